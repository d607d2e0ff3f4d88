"""Test set-up: eight simulated CPU devices, so every sharding path runs on one CPU; programs compiled
without XLA's backend (LLVM) optimisations.

The tests' arrays are tiny, so compiling is most of their time, and LLVM's optimisations most of the
compiling: with them off (as tests/models/model_fixtures.quick_jit and benchmarks/gpu_check.py --tiny
already compiled) the same numerics up to float rounding, and, measured here at load ~1, six in-process
test files (init_from, import_cli, deblurrer, registry, kernel_estimation, proximal) took 84 s instead
of 116 s, four more (step, two_stage, blind_unfolded, unfolded) 72 s instead of 88 s; the U-Net and
blind runlocal runs of launch.py 29-30 s instead of 47 s (load 3, cold). Tests whose time is running
rather than compiling lose a little (the blind kernel search on photographs: 69 s against 68 s). To
run the suite optimised: ``XLA_FLAGS=--xla_backend_optimization_level=2 pytest``.

What compiling remained went mostly to XLA:CPU's MLIR fusion emitters: with its older emitters
(``--xla_cpu_use_fusion_emitters=false``, where this jaxlib has the flag) the tiny U-Net's training
step compiles in 2.9 s instead of 6.5 s, and the whole suite took 436 s instead of 678 s (776 s of
CPU instead of 1225 s; quiet, 2026-12-03). Their fusions round differently, within float32 rounding.

The device count and the flags must be fixed before JAX's backend starts, hence at import time here.
"""
import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zlib


def _xla_knows(flag: str) -> bool:
    """Whether this jaxlib's XLA accepts ``flag``: an unknown flag in XLA_FLAGS aborts the process."""
    env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env, capture_output=True)
    return probe.returncode == 0


os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")
# Set once, by the first process (pytest's, before xdist starts its workers, which inherit them as
# the launch.py subprocesses do); "checked" keeps the workers from probing again.
if os.environ.get("JDEBLUR_TEST_XLA_FLAGS") != "checked":
    os.environ["JDEBLUR_TEST_XLA_FLAGS"] = "checked"
    flags = ["--xla_backend_optimization_level=0"]
    if _xla_knows("--xla_cpu_use_fusion_emitters=false"):
        flags.append("--xla_cpu_use_fusion_emitters=false")
    for flag in flags:
        if flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):  # the user's own setting wins
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
# Tests that call jdeblur.cli.main() in this process must not turn on the user's persistent compilation
# cache (~/.cache/jdeblur/jax) for the rest of the session; subprocesses get their own (``env``).
os.environ["JDEBLUR_COMPILATION_CACHE"] = "0"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", int(os.environ["JAX_NUM_CPU_DEVICES"]))
# This process's own persistent compilation cache, in a temporary folder of its own: train_and_evaluate
# builds its step anew at every call, so a resumed run, another seed or a second test of the same
# config compiled again what an earlier test had compiled (seconds each); they read it back now.
_JAX_CACHE = tempfile.mkdtemp(prefix="jdeblur-tests-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)  # the costly programs only

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's id: fresh inputs per test, reproducible on failure."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def write_image(rng):
    """``write_image(path, shape=(40, 48, 3), dtype=uint8) -> the array written`` (random pixels)."""

    def write(path, shape=(40, 48, 3), dtype=np.uint8, image=None):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if image is None:
            image = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
        iio.imwrite(path, image)
        return image

    return write


@pytest.fixture
def x64():
    """Runs the test body with 64-bit JAX types, for float64 golden comparisons."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """The environment of ``launch.py`` subprocesses: one CPU device (as a user's machine; this process
    simulates 8), TFDS's default data folder under pytest's temporary folder (in case a command forgets
    data_dir), and one persistent JAX compilation cache for the whole session, so that a run reuses
    the programs an earlier one compiled (on this CPU, a U-Net runlocal run takes 35 s cold
    and 13 s warm). The XLA flags are this process's (compiled unoptimised, see above)."""
    env = dict(os.environ)
    env.pop("JAX_NUM_CPU_DEVICES", None)
    env.pop("JDEBLUR_COMPILATION_CACHE", None)
    env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
               TFDS_DATA_DIR=str(tmp_path_factory.mktemp("tfds_default")))
    return env


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """The built datasets shared by the ``launch.py`` subprocesses of the session."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture
def small_degrade_config():
    """Small kernels of three families and Gaussian noise, so that compiling stays quick."""
    from jdeblur.physics.degrade import default_degrade_config

    cfg = default_degrade_config()
    cfg.blur.size = 7
    cfg.blur.families = ("gaussian", "disk", "linear_motion")
    cfg.blur.weights = (1.0, 1.0, 1.0)
    cfg.blur.disk.radius = (1.0, 3.0)
    cfg.blur.linear_motion.length = (3.0, 7.0)
    cfg.noise.kind = "gaussian"
    cfg.noise.sigma = (0.01, 0.03)
    return cfg


@pytest.fixture
def folder_config(tmp_path, write_image, rng):
    """The data config of an ``image_folder`` dataset: three mid-grey 20x24 test photos, one train photo."""
    from jdeblur.data.pipeline import default_data_config

    for i in range(3):  # one shape: one compilation of the degradation
        mid_grey = rng.integers(64, 192, (20, 24, 3), dtype=np.uint8)
        write_image(tmp_path / "photos" / "test" / f"img{i}.png", image=mid_grey)
    write_image(tmp_path / "photos" / "train" / "t.png")
    cfg = default_data_config()
    cfg.name, cfg.data_dir, cfg.manual_dir = "image_folder", str(tmp_path / "data"), str(tmp_path / "photos")
    return cfg


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory):
    """A U-Net runlocal workdir holding perturbed initial parameters (``tests/untrained.py``), shared
    by the tests that load a workdir without needing a trained one (deblur, export, the installed package)."""
    from tests import untrained

    return untrained.untrained_workdir(tmp_path_factory.mktemp("untrained_run") / "run", perturb=0.05)
