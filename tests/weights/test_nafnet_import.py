"""The official NAFNet's checkpoints in jdeblur: the same outputs as the official code, and every misfit named.

The fixtures come from the official code run by tools/make_nafnet_fixture.py: a width-4,
four-level NAFNet with random weights, a 40x52 input (the official model zero-pads it to 48x64
inside) and its outputs without and with TLC (training sizes 24, not a multiple of 16, and 16).
"""
import pathlib

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

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "nafnet"
BLOCKS = dict(width=4, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))


def abstract_params(model):
    return jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32))["params"]


@pytest.fixture(scope="module")
def official():
    """The fixture checkpoint converted (from .pth; the .safetensors copy must give the same), and the I/O."""
    abstract = abstract_params(Model(**BLOCKS))
    params = {fmt: nafnet.convert(load_state_dict(FIXTURES / f"official.{fmt}").tensors, abstract, source=fmt)
              for fmt in ("pth", "safetensors")}
    jax.tree.map(np.testing.assert_array_equal, params["pth"], params["safetensors"])
    return params["pth"], np.load(FIXTURES / "io.npz")


def test_zero_padded_restoration_matches_the_official_model(official):
    params, io = official
    model = Model(**BLOCKS)
    restored = infer.restore_with_model(model, params, io["input"], pad="zero", clip=False)
    np.testing.assert_allclose(restored, io["plain"], atol=1e-5, rtol=0)
    # Reflect padding (the default) is not the official function near the bottom and right edges.
    reflected = infer.restore_with_model(model, params, io["input"], clip=False)
    assert np.abs(reflected - io["plain"]).max() > 1e-2


@pytest.mark.parametrize("train_size", [24, 16])
def test_tlc_matches_the_official_local_converter(official, train_size):
    params, io = official
    model = Model(**BLOCKS, tlc=True, train_size=train_size)
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
    with pytest.raises(UserError, match=r"source\.pth: does not fit the configured NAFNet \(178 tensors\); "
                                        r"missing \(1\): intro\.bias; extra \(1\): encoders\.0\.0\.extra; "
                                        r"wrong shape \(1\): ending\.weight \(3, 2, 3, 3\) \(expected \(3, 4, 3, 3\)\)"):
        nafnet.convert(tensors, abstract, source="source.pth")
    wider = abstract_params(Model(**dict(BLOCKS, width=8)))
    with pytest.raises(UserError, match=r"wrong shape \(1[0-9]{2}\): "):
        nafnet.convert(load_state_dict(FIXTURES / "official.pth").tensors, wider, source="source.pth")


def test_official_names_cover_the_published_model_one_to_one():
    abstract = abstract_params(Model(variant="width32"))
    paths = [tuple(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(abstract)]
    names = {nafnet.official_name(path) for path in paths}
    assert len(names) == len(paths)
    # NAFNet_arch.py's names for a few of them (28 blocks in the last encoder level).
    assert {"intro.weight", "encoders.3.27.sca.1.weight", "downs.3.bias", "middle_blks.0.beta",
            "ups.0.0.weight", "decoders.3.0.norm2.weight", "ending.bias"} <= names
