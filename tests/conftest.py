"""Test set-up: eight simulated CPU devices, so every sharding path runs on one CPU.

The device count must be fixed before JAX's backend starts, hence at import time here.
"""
import os
import zlib

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", int(os.environ["JAX_NUM_CPU_DEVICES"]))

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's id: fresh inputs per test, reproducible on failure."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def x64():
    """Runs the test body with 64-bit JAX types, for float64 golden comparisons."""
    with jax.enable_x64(True):
        yield
