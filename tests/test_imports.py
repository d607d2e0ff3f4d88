"""The package's layers point down: no import cycle inside ``jdeblur/``, and no lower layer imports a higher one.

Imports are read from the source with ``ast``, wherever they are (a function-level import that
closes a cycle is still a cycle; it only hides it until that function runs).
"""
import ast
import pathlib

import pytest

from jdeblur.config import REPO

PACKAGE = REPO / "jdeblur"
# Each layer imports nothing from the packages listed for it (models/ may import
# physics/; nothing below imports models/; data/ is independent of training).
FORBIDDEN = {
    "jdeblur.physics": ("jdeblur.models", "jdeblur.data", "jdeblur.train", "jdeblur.restore"),
    "jdeblur.restore": ("jdeblur.models", "jdeblur.data", "jdeblur.train"),
    "jdeblur.models": ("jdeblur.data", "jdeblur.train"),
    "jdeblur.data": ("jdeblur.models", "jdeblur.train"),
}


def module_names(package: pathlib.Path) -> dict[str, pathlib.Path]:
    """``{'jdeblur.train.loop': path, 'jdeblur.train': path of its __init__.py, ...}``."""
    names = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(path: pathlib.Path, name: str, modules) -> set[str]:
    """The modules of ``modules`` that the source of module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                parent = package.split(".")
                base = ".".join(parent[:len(parent) - node.level + 1] + ([base] if base else []))
            # ``from a.b import c`` imports the module a.b.c when there is one, else a name of a.b.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                         for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph(package: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_names(package)
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_inside_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", FORBIDDEN)
def test_lower_layers_import_no_higher_one(layer):
    wrong = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                   if module == layer or module.startswith(layer + ".")
                   for target in targets if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[layer]))
    assert not wrong, "; ".join(wrong)


def test_the_checks_see_cycles_and_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("import pkg.b\n")
    (package / "b.py").write_text("from pkg.sub import c\n")
    (package / "sub" / "c.py").write_text("def f():\n    from .. import a  # function-level, relative\n")
    (package / "d.py").write_text("from pkg.sub import name_not_module\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.sub": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub.c"},
                     "pkg.sub.c": {"pkg.a"}, "pkg.d": {"pkg.sub"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    graph["pkg.sub.c"] = set()
    assert find_cycle(graph) is None


def test_tests_share_helper_modules_not_other_test_modules():
    """A test file imports what it shares from helper modules (``tests/launching.py``, ...), never from a
    ``test_*.py`` or a ``conftest.py``: importing one runs its tests' module-level set-up and hides
    where a helper lives."""
    tests = REPO / "tests"
    modules = module_names(tests)
    wrong = sorted(f"{name} imports {target}" for name, path in modules.items()
                   for target in imports_of(path, name, modules)
                   if target.rpartition(".")[2].startswith("test_") or target.endswith("conftest"))
    assert not wrong, "; ".join(wrong)
