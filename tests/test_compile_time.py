"""Smoke test of benchmarks/compile_time.py at tiny size: what its variants compile, and one round."""
import pathlib
import sys

import jax
import numpy as np
import pytest

from jdeblur import config as cfglib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import compile_time  # noqa: E402


@pytest.mark.slow
def test_the_unrolled_variant_computes_the_scanned_function_without_a_scan():
    config = cfglib.load_config(*compile_time.TINY_CASE)
    models = {v: compile_time.variant_model(config, v) for v in compile_time.VARIANTS}
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    # Random values for every parameter (initialised, the last convolutions are zero and would hide a difference).
    leaves, tree = jax.tree.flatten(jax.eval_shape(models["cpu"].init, jax.random.key(1), x))
    rng = np.random.default_rng(2)  # numpy's: jax.random.normal would compile once per parameter shape
    variables = tree.unflatten([rng.normal(0, 0.1, p.shape).astype(np.float32) for p in leaves])
    programs = {v: str(jax.make_jaxpr(m.apply)(variables, x)) for v, m in models.items()}
    assert "scan" in programs["cpu"]  # the tiny case has a run of two identical blocks
    assert "scan" not in programs["unrolled"] and "scan" not in programs["xla"]
    convolutions = {v: program.count("conv_general_dilated") for v, program in programs.items()}
    assert convolutions["xla"] > convolutions["unrolled"] == convolutions["cpu"]  # the blocks' own are XLA's
    scanned, unrolled = (jax.jit(models[v].apply)(variables, x) for v in ("cpu", "unrolled"))
    np.testing.assert_allclose(unrolled, scanned, atol=1e-5 * float(np.max(np.abs(scanned - x))))


@pytest.mark.slow
def test_one_round_times_the_scanned_variant(capsys):
    medians = compile_time.main(["--tiny", "--rounds", "1", "--variants", "cpu"])
    assert list(medians) == ["cpu"]
    assert all(medians["cpu"][k] > 0 for k in ("lower_wall", "lower_cpu", "compile_wall", "compile_cpu"))
    assert "\n| cpu | " in capsys.readouterr().out
