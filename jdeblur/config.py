"""Experiment configs: Python files returning a locked ``ml_collections.ConfigDict``.

An experiment is a file ``experiments/NAME.py`` with ``get_config(arg=None)``; it is named on the
command line as ``experiments/NAME.py``, ``NAME.py`` or ``NAME``, optionally followed by ``:arg``
(e.g. ``quickstart:runlocal``); by name only from a checkout (the installed package holds no
experiments: a ``jdeblur`` installed elsewhere is given their paths). An experiment file is Python
code run with the user's rights, like any script: run only experiment files you trust. Whatever
one raises is reported as the user's error, naming the file. Overrides are ``field.sub=value``
strings, parsed against the type of the field they replace, so that a misspelt field or a value of
the wrong type fails loudly instead of silently training something else.
"""
import ast
import difflib
import importlib.util
import pathlib
import sys

import ml_collections

from jdeblur.errors import UserError

# The folder above the package: a checkout (launch.py, experiments/ and runs/ are there), or the
# site-packages of an installed jdeblur, which holds no experiments (CHECKOUT is then None).
REPO = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO / "experiments"
CHECKOUT = REPO if EXPERIMENTS_DIR.is_dir() else None


class ConfigError(UserError):
    """A user's experiment name, argument or override is invalid."""


def list_experiments(directory: pathlib.Path = EXPERIMENTS_DIR) -> list[str]:
    """The names of the experiment files in ``directory`` (without ``.py``)."""
    return sorted(p.stem for p in directory.glob("*.py") if not p.name.startswith("_"))


def resolve_experiment(spec: str, directory: pathlib.Path = EXPERIMENTS_DIR) -> tuple[pathlib.Path, str | None]:
    """Splits ``path[:arg]`` and finds the experiment file; raises ConfigError listing valid names."""
    path_part, _, arg = spec.partition(":")
    candidates = [pathlib.Path(path_part)]
    if not path_part.endswith(".py"):
        candidates.append(pathlib.Path(path_part + ".py"))
    candidates += [directory / c.name for c in list(candidates)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), (arg or None)
    if not directory.is_dir():
        raise ConfigError(f"experiment {path_part!r} not found; jdeblur is installed outside a checkout, so "
                          f"experiments are named by path: expected an experiment file such as "
                          f"path/to/jdeblur/experiments/NAME.py")
    raise ConfigError(
        f"experiment {path_part!r} not found; expected a file experiments/NAME.py, "
        f"valid names: {', '.join(list_experiments(directory))}"
    )


def load_experiment(spec: str, directory: pathlib.Path = EXPERIMENTS_DIR):
    """Imports the experiment file named by ``spec``; returns (module, path, arg)."""
    path, arg = resolve_experiment(spec, directory)
    module_name = f"jdeblur_experiment_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except UserError:  # e.g. a config that loads another experiment that is missing: already named
        raise
    except Exception as e:  # the experiment file is the user's code: whatever it raises is theirs to fix
        raise ConfigError(f"{path}: running the experiment file failed: {type(e).__name__}: {e}") from e
    return module, path, arg


def call_experiment(module, path: pathlib.Path, name: str, arg):
    """``module.name(arg)`` (``module.name()`` when ``arg`` is None) of an experiment file; whatever it
    raises becomes a ConfigError naming the file (the experiment is the user's code)."""
    try:
        return getattr(module, name)(arg) if arg is not None else getattr(module, name)()
    except UserError:
        raise
    except Exception as e:
        raise ConfigError(f"{path}: {name}({arg!r}) failed: {type(e).__name__}: {e}") from e


def load_config(spec: str, overrides: list[str] = (), directory: pathlib.Path = EXPERIMENTS_DIR) -> ml_collections.ConfigDict:
    """Loads ``experiments/NAME.py[:arg]``, applies ``field=value`` overrides and returns it locked."""
    module, path, arg = load_experiment(spec, directory)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: expected a function get_config(arg=None)")
    config = ml_collections.ConfigDict(call_experiment(module, path, "get_config", arg))
    config.lock()
    apply_overrides(config, overrides)
    return config


def parse_value(text: str, current):
    """Parses ``text`` into the type of ``current`` (the value it replaces)."""
    if isinstance(current, str):
        return text
    if current is None:
        # A field left None accepts any literal; a bare word stays a string.
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"expected a value of type {type(current).__name__}, got {text!r}") from e
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(current)(value)
    if isinstance(current, (int, float)) and type(value) is not type(current):
        raise ValueError(f"expected a value of type {type(current).__name__}, got {text!r}")
    return value


def _field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    names = []
    for key, value in config.items():
        names.append(prefix + key)
        if isinstance(value, ml_collections.ConfigDict):
            names += _field_names(value, prefix + key + ".")
    return names


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> None:
    """Applies ``a.b=value`` strings to a locked config in place; unknown fields raise ConfigError."""
    for override in overrides:
        field, sep, text = override.partition("=")
        field = field.removeprefix("--").removeprefix("config.")
        if not sep or not field:
            raise ConfigError(f"override {override!r}: expected FIELD=VALUE, e.g. train.steps=100")
        *parents, leaf = field.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
            if node is None:
                break
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            close = difflib.get_close_matches(field, _field_names(config), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"override {override!r}: config has no field {field!r}{hint}")
        current = node[leaf]
        if isinstance(current, ml_collections.ConfigDict):
            # A whole group may be replaced by a dict literal (e.g. model.kwargs={'width': 24}),
            # for groups whose keys are open, like a model's keyword arguments.
            try:
                replacement = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                replacement = None
            if not isinstance(replacement, dict):
                raise ConfigError(f"override {override!r}: {field!r} is a group; set one of its fields "
                                  f"or give a whole dict, e.g. {field}={{'key': value}}")
            with node.unlocked():
                node[leaf] = ml_collections.ConfigDict(replacement)
            node[leaf].lock()
            continue
        try:
            value = parse_value(text, current)
        except ValueError as e:
            raise ConfigError(f"override {override!r}: {e}") from e
        with node.unlocked():
            node[leaf] = value


def to_overrides(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, object]:
    """Flattens a config into ``{'a.b': value}`` leaves (used to diff configs and name sweep points)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            flat.update(to_overrides(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat
