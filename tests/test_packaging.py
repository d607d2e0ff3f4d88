"""``pip install .`` as a user outside the checkout gets it: the wheel holds the package alone, and the
installed ``jdeblur`` imports and runs with the checkout off the path.

The wheel is built once per module from a copy of the package's sources (building in the checkout
would leave ``build/`` there) and installed with ``pip --target`` into a temporary folder, which is
all the subprocesses' PYTHONPATH holds; they run in another temporary folder.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from jdeblur.config import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(site, run)``: the folder the wheel was installed into, and ``run(*command)`` -> a finished
    subprocess there, with only ``site`` on the path and a folder outside the checkout as its cwd."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO / "jdeblur", source / "jdeblur", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", root / "wheels", source],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (root / "wheels").glob("jdeblur-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, capture_output=True,
                   timeout=300)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_NUM_CPU_DEVICES", None)

    def run(*command, timeout=120):
        return subprocess.run([str(c) for c in command], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=timeout)

    return wheel, site, run


def requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_the_runtime_dependencies_are_requirements_txt_with_the_same_ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dev = project["optional-dependencies"]["dev"]
    assert sorted(project["dependencies"] + dev) == sorted(requirement_lines((REPO / "requirements.txt").read_text()))
    assert all(name.startswith(("pytest", "wheel", "ruff")) for name in dev), dev


@pytest.mark.slow
def test_the_wheel_holds_the_package_alone(installed):
    wheel, _, _ = installed
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"jdeblur", wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info"}, tops
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "jdeblur").rglob("*.py")}
    assert sources <= set(zipfile.ZipFile(wheel).namelist())


@pytest.mark.slow
def test_the_installed_command_runs_outside_the_checkout(installed):
    _, site, run = installed
    where = run(sys.executable, "-c", "import jdeblur; print(jdeblur.__file__)")
    assert pathlib.Path(where.stdout.strip()).parent == site / "jdeblur", where.stderr
    result = run(site / "bin" / "jdeblur", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: jdeblur"), result.stderr
    for command in ("train", "eval", "deblur", "sweep", "report", "import-weights"):
        assert command in result.stdout


@pytest.mark.slow
def test_the_installed_package_loads_a_workdir_and_deblurs_an_array(installed, untrained_run):
    _, site, run = installed
    workdir = untrained_run
    code = ("import jdeblur, numpy as np; m = jdeblur.load({!r}); y = m.deblur(np.full((20, 30), 0.5, np.float32)); "
            "print(jdeblur.__file__, y.shape, y.dtype)").format(str(workdir))
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [str(site / "jdeblur" / "__init__.py"), "(20,", "30)", "float32"], result.stdout
    assert "read only" not in result.stderr


@pytest.mark.slow
def test_an_installed_package_finds_experiments_by_path_and_says_so_for_a_name(installed):
    _, site, run = installed
    result = run(site / "bin" / "jdeblur", "train", "--config", "quickstart:runlocal")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: experiment 'quickstart' not found; jdeblur is installed outside a checkout")
    code = ("import sys; from jdeblur import config; print(config.CHECKOUT); "
            "print(*config.resolve_experiment(sys.argv[1]))")
    result = run(sys.executable, "-c", code, REPO / "experiments" / "quickstart.py:runlocal")
    assert result.stdout.split() == ["None", str(REPO / "experiments" / "quickstart.py"), "runlocal"], result.stderr
