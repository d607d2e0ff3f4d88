"""Smoke test of benchmarks/gpu_check.py on simulated CPU devices, so the script is ready the day a GPU is."""
import math
import pathlib
import sys

import jax
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check  # noqa: E402


def test_device_scaling_is_powers_of_two_then_all():
    assert gpu_check.device_scaling(8, None) == [1, 2, 4, 8]
    assert gpu_check.device_scaling(6, None) == [1, 2, 4, 6]
    assert gpu_check.device_scaling(8, 2) == [1, 2]
    assert gpu_check.device_scaling(1, None) == [1]


@pytest.mark.slow
def test_gpu_check_runs_every_kind_of_case_at_tiny_size(capsys):
    assert len(jax.devices()) >= 2  # tests/conftest.py simulates 8 CPU devices
    results = gpu_check.main(["--tiny", "--models", "nafnet-width32", "--dtypes", "bfloat16",
                              "--max-devices", "2", "--steps", "1", "--per-device", "1"])
    cases = [(r["kernels"], r["devices"]) for r in results]
    assert cases == [("auto", 1), ("xla", 1), ("auto", 2)]  # on CPU the other kernels are XLA's
    for r in results:
        assert r["loss_finite"] and r["images"] == r["devices"]
        assert r["images_per_s"] > 0 and r["flops"] > 0 and 0 < r["peak_fraction"] < math.inf
        assert r["xla_bytes"] > 0 and r["peak_bytes"] is None  # CPU devices report no memory stats
    assert 0 < results[-1]["scaling_efficiency"] < math.inf
    printed = capsys.readouterr().out
    assert "bf16 matmul peak" in printed and "| nafnet-width32 | bfloat16 | xla | 1 |" in printed
