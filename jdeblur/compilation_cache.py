"""JAX's persistent compilation cache, on by default for jdeblur's commands.

Compiling the U-Net experiment's train step takes about 16 s on a 2-core CPU, and every command compiles
its step, evaluation and restoration functions again. With the cache on, XLA executables are written
to disk the first time and read back by later processes that compile the same computation (same
program, shapes, devices, jax version and flags; the key covers them all, so a stale entry is never
used). jax 0.10 caches executables on CPU as well as on GPU and TPU.

Where: ``$JDEBLUR_CACHE_DIR``, else JAX's own ``$JAX_COMPILATION_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/jdeblur/jax``, else ``~/.cache/jdeblur/jax``. Off: ``JDEBLUR_COMPILATION_CACHE=0``.
JAX never evicts entries (an LRU limit needs the ``filelock`` package, not a dependency); the
U-Net experiment adds about 1 MiB, and deleting the directory is safe at any time.
"""
import os
import pathlib
import warnings

import jax

DIR_ENV = "JDEBLUR_CACHE_DIR"
SWITCH_ENV = "JDEBLUR_COMPILATION_CACHE"
_OFF = ("0", "false", "no", "off")
# Every compilation is cached, not only those over jax's default of 1 s: start-up is many small
# compilations (initialisation, the evaluation's baselines), and with all of them cached the
# U-Net experiment reached its first step in 9 s instead of 13 s (41 files, 0.9 MiB;
# benchmarks/startup.py).
MIN_COMPILE_TIME_S = 0.0


def default_cache_dir() -> pathlib.Path:
    """``$JDEBLUR_CACHE_DIR``, else ``$XDG_CACHE_HOME/jdeblur/jax``, else ``~/.cache/jdeblur/jax``."""
    if os.environ.get(DIR_ENV):
        return pathlib.Path(os.environ[DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base).expanduser() / "jdeblur" / "jax"


def enable(cache_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Turns the persistent compilation cache on in ``cache_dir`` (default: ``default_cache_dir()``).

    Returns the directory, or None when ``JDEBLUR_COMPILATION_CACHE`` switches the cache off or the
    directory cannot be made (a warning says why: the cache saves time, its absence never fails a
    command). Call it before the compilations to cache; it affects this process only.
    """
    if os.environ.get(SWITCH_ENV, "").strip().lower() in _OFF:
        return None
    if cache_dir is None and not os.environ.get(DIR_ENV) and jax.config.jax_compilation_cache_dir:
        cache_dir = jax.config.jax_compilation_cache_dir  # set by the user through JAX's own variable
    path = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        warnings.warn(f"persistent compilation cache off: cannot make {path} ({e}); set {DIR_ENV} to a "
                      f"writable folder, or {SWITCH_ENV}=0", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return path
