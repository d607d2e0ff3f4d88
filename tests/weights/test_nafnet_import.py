"""The official NAFNet's checkpoints in jdeblur: the same outputs as the official code, and every misfit named.

The fixtures come from the official code run by tools/make_nafnet_fixture.py (``official_fixture``):
a 40x52 input (the official model zero-pads it to 48x64 inside) and its outputs without and with
TLC (training sizes 24, not a multiple of 16, and 16). Checked with both of jdeblur's layouts:
``kernels='cpu'`` (runs of blocks scanned over stacked parameters in the trainer's module) and
``'xla'`` (unrolled; GPUs).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur import infer
from jdeblur.errors import UserError
from jdeblur.models.nafnet import Model
from jdeblur.weights import nafnet
from jdeblur.weights.state_dict import load_state_dict
from tests.models.model_fixtures import quick_jit
from tests.weights.official_fixture import BLOCKS, FIXTURES, TENSORS

KERNELS = ("cpu", "xla")


def abstract_params(model):
    return jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32))["params"]


@pytest.fixture(scope="module")
def official():
    """The fixture checkpoint converted for each layout (from .pth; the .safetensors copy must give the
    same), and the I/O."""
    converted = {}
    for kernels in KERNELS:
        abstract = abstract_params(Model(**BLOCKS, kernels=kernels))
        for fmt in ("pth", "safetensors"):
            converted[kernels, fmt] = nafnet.convert(load_state_dict(FIXTURES / f"official.{fmt}").tensors, abstract,
                                                     source=fmt)
            jax.tree.map(np.testing.assert_array_equal, converted[kernels, fmt], converted[KERNELS[0], "pth"])
    return {kernels: converted[kernels, "pth"] for kernels in KERNELS}, np.load(FIXTURES / "io.npz")


def test_the_cpu_layout_scans_the_fixtures_runs_of_blocks_in_training(official):
    params, io = official

    def scans(model):
        return str(jax.make_jaxpr(model.apply)({"params": params[model.kernels]}, io["input"][:, :32, :48])).count("scan[")

    assert {kernels: (scans(Model(**BLOCKS, kernels=kernels)), scans(Model(**BLOCKS, kernels=kernels).for_training()))
            for kernels in KERNELS} == {"cpu": (0, 2), "xla": (0, 0)}


@pytest.mark.parametrize("kernels", KERNELS)
def test_zero_padded_restoration_matches_the_official_model(official, kernels):
    params, io = official
    params, model = params[kernels], Model(**BLOCKS, kernels=kernels)
    restored = infer.restore_with_model(model, params, io["input"], pad="zero", clip=False)
    np.testing.assert_allclose(restored, io["plain"], atol=1e-5, rtol=0)
    # Reflect padding (the default) is not the official function near the bottom and right edges.
    reflected = infer.restore_with_model(model, params, io["input"], clip=False)
    assert np.abs(reflected - io["plain"]).max() > 1e-2


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("train_size", [24, 16])
def test_tlc_matches_the_official_local_converter(official, train_size, kernels):
    params, io = official
    params, model = params[kernels], Model(**BLOCKS, tlc=True, train_size=train_size, kernels=kernels)
    height, width = io["input"].shape[1:3]
    padded = np.pad(io["input"], ((0, 0), (0, -height % 16), (0, -width % 16), (0, 0)))  # as the official forward
    restored = quick_jit(model.apply)({"params": params}, padded)[:, :height, :width]
    np.testing.assert_allclose(restored, io[f"tlc{train_size}"], atol=1e-5, rtol=0)
    assert np.abs(io[f"tlc{train_size}"] - io["plain"]).max() > 1e-3  # local pooling is at work


def test_a_misfit_checkpoint_is_refused_listing_every_tensor():
    tensors = dict(load_state_dict(FIXTURES / "official.pth").tensors)
    del tensors["intro.bias"]
    tensors["encoders.0.0.extra"] = np.zeros(3, np.float32)
    tensors["ending.weight"] = tensors["ending.weight"][:, :2]
    abstract = abstract_params(Model(**BLOCKS))
    with pytest.raises(UserError, match=rf"source\.pth: does not fit the configured NAFNet \({TENSORS} tensors\); "
                                        r"missing \(1\): intro\.bias; extra \(1\): encoders\.0\.0\.extra; "
                                        r"wrong shape \(1\): ending\.weight \(3, 2, 3, 3\) \(expected \(3, 4, 3, 3\)\)"):
        nafnet.convert(tensors, abstract, source="source.pth")
    wider = abstract_params(Model(**dict(BLOCKS, width=8)))
    with pytest.raises(UserError, match=r"wrong shape \(\d+\): "):
        nafnet.convert(load_state_dict(FIXTURES / "official.pth").tensors, wider, source="source.pth")


def test_official_names_cover_the_published_model_one_to_one():
    abstract = abstract_params(Model(variant="width32"))
    paths = [tuple(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(abstract)]
    names = {nafnet.official_name(path) for path in paths}
    assert len(names) == len(paths)
    # NAFNet_arch.py's names for a few of them (28 blocks in the last encoder level).
    assert {"intro.weight", "encoders.3.27.sca.1.weight", "downs.3.bias", "middle_blks.0.beta",
            "ups.0.0.weight", "decoders.3.0.norm2.weight", "ending.bias"} <= names
