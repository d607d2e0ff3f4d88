"""The documentation stays true: links resolve, every module is in the README's layout table, and the
launch commands written in the docs parse and load their configs."""
import ast
import pathlib
import re
import shlex

import pytest

from jdeblur import cli
from jdeblur import config as cfglib

REPO = cfglib.REPO
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOC_MENTION = re.compile(r"\b(docs/[\w.-]+\.md)(#[\w-]+)?")


def anchors(page: pathlib.Path) -> set[str]:
    """GitHub's anchors of a markdown page's headings (lowercase, punctuation dropped, spaces to hyphens)."""
    found, text = set(), re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:  # a repeated heading gets -1, -2, ...
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken(target: str, page: pathlib.Path) -> str | None:
    """Why a relative link ``target`` written in ``page`` does not resolve, or None."""
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    if not resolved.exists():
        return f"{page.name}: {target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{page.name}: {target}: no heading with anchor #{anchor}"
    return None


def test_every_relative_link_in_the_readme_and_docs_resolves():
    problems = [broken(target, page) for page in PAGES for target in LINK.findall(page.read_text())
                if not re.match(r"[a-z]+:", target)]  # http:, https:, mailto: are not checked
    assert not [p for p in problems if p], [p for p in problems if p]


def test_the_docs_pages_the_experiments_name_exist():
    problems = []
    for path in sorted((REPO / "experiments").glob("*.py")):
        for page, anchor in DOC_MENTION.findall(ast.get_docstring(ast.parse(path.read_text())) or ""):
            problem = broken(page + anchor, REPO / "README.md")
            if problem:
                problems.append(f"{path.name}: {problem}")
    assert not problems, problems


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Why it's so\n\n```\n# not a heading\n```\n## Why it's so\n")
    assert anchors(tmp_path / "a.md") == {"top", "why-its-so", "why-its-so-1"}
    assert broken("a.md#why-its-so", tmp_path / "b.md") is None
    assert "no heading" in broken("a.md#not-a-heading", tmp_path / "b.md")
    assert "no such file" in broken("c.md", tmp_path / "b.md")


def test_the_readme_is_a_front_page_with_the_two_commands_first_the_second_what_ci_runs():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    ci_command = next(line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("pip "))
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == [
        "pip install -r requirements.txt && python launch.py", ci_command.strip()]
    assert "ruff check" in ci_command and ci_command.endswith("pytest")  # the linter, then the tests


def test_the_readme_layout_table_names_every_module():
    text = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `([\w/.]+)` \|", text, flags=re.M))
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "jdeblur").rglob("*.py") if p.name != "__init__.py"}
    assert not modules - listed, f"modules missing from README.md's layout table: {sorted(modules - listed)}"
    gone = {m for m in listed if m.startswith("jdeblur/") and not (REPO / m).exists()}
    assert not gone, f"README.md's layout table names modules that do not exist: {sorted(gone)}"


def written_commands() -> list[tuple[str, str]]:
    """Every ``python launch.py ...`` command on a line of its own (a code block) in the README or docs."""
    commands = []
    for page in PAGES:
        text = page.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("python launch.py") and "`" not in line:
                commands.append((page.name, line.split("  #")[0].split(" # ")[0]))
    return commands


@pytest.mark.parametrize("page, command", written_commands())
def test_a_launch_command_written_in_the_docs_parses_and_loads(page, command):
    args, overrides = cli.parse_command_line(shlex.split(command)[2:])
    if args.command in ("train", "sweep"):
        cfglib.load_config(args.config, overrides)
