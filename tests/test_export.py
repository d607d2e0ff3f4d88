"""``jdeblur export``: the StableHLO file read back by ``jax.export.deserialize`` and the ONNX file run by
onnxruntime compute the network's own output (within 1e-4) for the U-Net and NAFNet with TLC; the two-stage
blind model exports with its kernel search; the command writes a workdir's model, and its errors are one
line and exit 2."""
import sys

import jax
import numpy as np
import pytest

from jdeblur import cli, export, infer
from jdeblur.models.registry import get_model
from tests.launching import usage_error_in_process
from tests.models.model_fixtures import quick_jit, random_params

# NAFNet as experiments/gopro_nafnet.py:runlocal builds it: two levels, TLC with train_size 32, so a
# 64x48 tile pools over local 48x48 windows at full resolution (not the global mean).
NETWORKS = {"unet": dict(variant="tiny"),
            "nafnet": dict(variant="tiny", width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1), tlc=True, train_size=32)}
TILE = (64, 48)


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def network(request):
    """``(model, params)``: random parameters with every block at work (``random_params``)."""
    model = get_model(request.param, **NETWORKS[request.param])
    return model, random_params(model, (1, *TILE, 3))


def tile_and_output(network, rng):
    model, params = network
    x = rng.random((1, *TILE, 3), dtype=np.float32)
    expected = np.asarray(quick_jit(model.apply)({"params": params}, x))
    assert np.abs(expected - x).max() > 1e-2  # the perturbed network is not the identity
    return x, expected


@pytest.mark.slow
def test_the_stablehlo_file_computes_the_network(network, rng):
    data = export.export_stablehlo(infer.model_apply_fn(*network), (1, *TILE, 3))
    exported = jax.export.deserialize(bytearray(data))
    assert exported.platforms == ("cpu", "cuda") and exported.in_avals[0].shape == (1, *TILE, 3)
    x, expected = tile_and_output(network, rng)
    np.testing.assert_allclose(np.asarray(exported.call(x)), expected, atol=1e-4)


@pytest.mark.slow
def test_the_two_stage_model_exports_with_its_search():
    """The blind default experiment's model (kernel search, then unfolded deconvolution) lowers for CPU and
    CUDA and reads back. The file is not run: compiling it and the model to compare outputs took 18 s of
    CPU here (the search shrunk to 5-px kernels, one round), so outputs are compared for the U-Net and
    NAFNet only."""
    model = get_model("two_stage", variant="tiny")
    data = export.export_stablehlo(infer.model_apply_fn(model, random_params(model, (1, *TILE, 3))), (1, *TILE, 3))
    exported = jax.export.deserialize(bytearray(data))
    assert exported.platforms == ("cpu", "cuda")
    assert [a.shape for a in exported.in_avals] == [(1, *TILE, 3)] == [a.shape for a in exported.out_avals]


@pytest.mark.slow
def test_the_onnx_file_computes_the_network_in_onnxruntime(network, rng):
    pytest.importorskip("jax2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    data = export.export_onnx(infer.model_apply_fn(*network), (1, *TILE, 3))
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    x, expected = tile_and_output(network, rng)
    [restored] = session.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})
    np.testing.assert_allclose(restored, expected, atol=1e-4)


@pytest.mark.slow
def test_the_export_command_writes_a_workdirs_model_and_fails_in_one_line(untrained_run, tmp_path, capsys,
                                                                          monkeypatch):
    output = tmp_path / "model.stablehlo"
    assert cli.main(["export", "--workdir", str(untrained_run), "--format", "stablehlo", "--output", str(output),
                     "--tile", "32", "40"]) == 0
    assert jax.export.deserialize(bytearray(output.read_bytes())).in_avals[0].shape == (1, 32, 40, 3)
    wrong = ["--output", str(tmp_path / "wrong.bin")]
    line = usage_error_in_process(capsys, "export", "--workdir", untrained_run, "--format", "tflite", *wrong)
    assert "--format: expected one of ['onnx', 'stablehlo'], got 'tflite'" in line
    (tmp_path / "empty").mkdir()
    line = usage_error_in_process(capsys, "export", "--workdir", tmp_path / "empty", "--format", "stablehlo", *wrong)
    assert "no config.json" in line
    line = usage_error_in_process(capsys, "export", "--workdir", untrained_run, "--format", "stablehlo", "--tile",
                                  "30", "32", *wrong)
    assert "--tile 30 32: expected multiples of the model's size multiple, 4" in line
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # as if not installed
    line = usage_error_in_process(capsys, "export", "--workdir", untrained_run, "--format", "onnx", *wrong)
    assert "pip install jax2onnx onnxruntime" in line
    assert not (tmp_path / "wrong.bin").exists()
