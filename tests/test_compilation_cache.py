"""The persistent compilation cache: where it goes, how it is switched off, that a second process hits it."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from jdeblur import compilation_cache
from jdeblur.config import REPO

# Compiles one function with the cache enabled in argv[1] ('-': the default directory); prints the
# directory and the number of cache hits.
CHILD = """
import json, sys
import jax, jax.numpy as jnp
from jdeblur import compilation_cache

hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
path = compilation_cache.enable(None if sys.argv[1] == "-" else sys.argv[1])
x = jax.device_put(jnp.arange(64.0).reshape(8, 8))
jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0))(x).block_until_ready()
print(json.dumps({"dir": str(path), "hits": len(hits)}))
"""


def cache_files(path: pathlib.Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def run_child(cache_dir, **env_updates) -> dict:
    ours = ("JDEBLUR_", "JAX_COMPILATION", "JAX_PERSIST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **env_updates)
    output = subprocess.run([sys.executable, "-c", CHILD, str(cache_dir)], env=env, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_second_process_reads_what_the_first_compiled(tmp_path):
    cache_dir = tmp_path / "cache"
    # Every compilation cached, however fast, so that the test does not hang on this machine's speed.
    first = run_child(cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    written = cache_files(cache_dir)
    assert first == {"dir": str(cache_dir), "hits": 0}
    assert written, "the first process wrote no cache entry"

    second = run_child(cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert second["hits"] >= 1
    assert cache_files(cache_dir) == written, "the second process compiled something again"


def test_default_directory_is_jax_own_setting_when_the_user_gave_one(tmp_path):
    # As tests/conftest.py's environment for launch.py subprocesses gives one.
    result = run_child("-", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_dir"), HOME=str(tmp_path / "home"))
    assert result["dir"] == str(tmp_path / "jax_dir")
    assert (tmp_path / "jax_dir").is_dir() and not (tmp_path / "home").exists()


def test_switched_off_by_the_environment_leaves_jax_alone(tmp_path, monkeypatch):
    monkeypatch.setenv(compilation_cache.SWITCH_ENV, "0")
    before = jax.config.jax_compilation_cache_dir
    assert compilation_cache.enable(tmp_path / "cache") is None
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "cache").exists()


def test_unusable_directory_warns_and_leaves_jax_alone(tmp_path, monkeypatch):
    monkeypatch.delenv(compilation_cache.SWITCH_ENV, raising=False)
    (tmp_path / "a_file").write_text("")
    before = jax.config.jax_compilation_cache_dir
    with pytest.warns(UserWarning, match="compilation cache off"):
        assert compilation_cache.enable(tmp_path / "a_file" / "cache") is None
    assert jax.config.jax_compilation_cache_dir == before


def test_default_directory_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(compilation_cache.DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache.default_cache_dir() == tmp_path / "home" / ".cache" / "jdeblur" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache.default_cache_dir() == tmp_path / "xdg" / "jdeblur" / "jax"
    monkeypatch.setenv(compilation_cache.DIR_ENV, str(tmp_path / "mine"))
    assert compilation_cache.default_cache_dir() == tmp_path / "mine"
