"""What a workdir records about its run: the full config, the code's commit, packages and devices.

``config.json`` is written once; a later run in the same workdir (a resume) must have the same
config, since resuming under a different one would silently mix two experiments. ``run.json``
is rewritten on every (re)start with the code, packages and devices of that start. A workdir
whose parameters were imported from a file (``launch.py import-weights``) is never trained in; its
``run.json`` names the file and its SHA-256.
"""
import importlib.metadata
import json
import pathlib
import platform
import subprocess
import sys

import jax

from jdeblur import config as cfglib
from jdeblur.atomic import read_json, write_json
from jdeblur.errors import UserError

IMPORTED = "imported_from"  # run.json's record of where an imported workdir's parameters came from
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets", "numpy")


class ConfigMismatchError(UserError):
    """The workdir holds a run of a different config."""


def git_commit() -> str | None:
    """The commit of the code being run (with ``+dirty`` for uncommitted changes), if in a git checkout."""
    root = cfglib.REPO
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def config_dict(config) -> dict:
    """The config as plain JSON data (tuples become lists)."""
    return json.loads(config.to_json())


def record_run(config, workdir: pathlib.Path) -> None:
    """Writes ``config.json`` (or checks it matches) and ``run.json`` in ``workdir``."""
    if jax.process_index() != 0:
        return
    path = workdir / "config.json"
    current = config_dict(config)
    if path.is_file():
        changed = changed_fields(read_json(path), current)
        if changed:
            raise ConfigMismatchError(
                f"{workdir} holds a run of a different config (fields {', '.join(changed)} differ); "
                f"use a new --workdir, or the same config to resume")
    write_json(path, current, indent=1, sort_keys=True)
    write_json(workdir / "run.json", _environment(), indent=1, sort_keys=True)


def _environment() -> dict:
    """The command, code, packages and devices of this process."""
    return {
        "command": sys.argv,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "process_count": jax.process_count(),
    }


def record_import(config, workdir: pathlib.Path, source: dict) -> None:
    """Writes ``config.json`` and ``run.json`` for parameters imported from a file; ``source``
    (the file's path, SHA-256, format) goes into ``run.json`` under ``IMPORTED``."""
    write_json(workdir / "config.json", config_dict(config), indent=1, sort_keys=True)
    write_json(workdir / "run.json", {**_environment(), IMPORTED: source}, indent=1, sort_keys=True)


def imported_from(workdir) -> dict | None:
    """The source record of a workdir written by ``record_import``; None for a training run's."""
    path = pathlib.Path(workdir) / "run.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(IMPORTED)


# Fields whose default does something other than what runs saved before the field existed did:
# the value that reproduces those runs, from their saved (flattened) config.
BEFORE_FIELD = {"eval.seed": lambda saved: saved.get("seed")}  # the eval set came from the run's seed


def changed_fields(saved: dict, current: dict) -> list[str]:
    """The fields whose values differ between a saved config and the current one.

    A field the saved config lacks is not a change when the current value is what that run did:
    the field was added to jdeblur after the run started, and the run behaved as the field's
    default does, or as ``BEFORE_FIELD`` says where the default changed the behaviour.
    """
    from jdeblur.train.defaults import base_config

    flat_saved, flat_current = (cfglib.to_overrides(_as_config(c)) for c in (saved, current))
    before = cfglib.to_overrides(_as_config(config_dict(base_config())))
    before.update({k: value_of(flat_saved) for k, value_of in BEFORE_FIELD.items()})
    missing = object()
    return sorted(k for k in set(flat_saved) | set(flat_current)
                  if flat_saved.get(k, missing) != flat_current.get(k)
                  and not (k not in flat_saved and k in before and flat_current.get(k) == before[k]))


def _as_config(data: dict):
    import ml_collections

    return ml_collections.ConfigDict(data)
