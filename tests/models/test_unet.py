"""Tests for the U-Net: every option builds and keeps the image shape, init, jit/vmap, remat, dtypes."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.models.layers import count_params
from jdeblur.models.unet import DOWNSAMPLINGS, NORMALIZATIONS, SKIPS, UPSAMPLINGS, VARIANTS, Model
from tests.models.model_fixtures import quick_jit, random_params


def test_every_option_keeps_the_image_shape():
    x = jax.ShapeDtypeStruct((2, 16, 24, 3), jnp.float32)
    # Three models cover every value of every option (shapes only: tracing, no compilation).
    for i in range(3):
        norm, down, up, skip = (options[i % len(options)] for options in (NORMALIZATIONS, DOWNSAMPLINGS,
                                                                          UPSAMPLINGS, SKIPS))
        model = Model(variant="tiny", norm=norm, downsample=down, upsample=up, skip=skip, activation="silu")
        params = jax.eval_shape(model.init, jax.random.key(0), x)
        out = jax.eval_shape(model.apply, params, x)
        assert out.shape == x.shape and out.dtype == jnp.float32, (norm, down, up, skip)


def test_variants_grow_and_have_their_size_multiple():
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    counts = [count_params(jax.eval_shape(Model(variant=v).init, jax.random.key(0), x)) for v in VARIANTS]
    assert counts == sorted(counts) and counts[0] < 100_000
    assert [Model(variant=v).size_multiple for v in VARIANTS] == [2 ** VARIANTS[v]["depth"] for v in VARIANTS]


def test_init_is_deterministic_per_key_and_starts_blocks_at_identity():
    model = Model(width=4, depth=1, blocks=1, middle_blocks=0, norm="none")
    init = quick_jit(model.init)
    x = jnp.zeros((1, 4, 4, 3))
    params, again, other = (init(jax.random.key(k), x)["params"] for k in (0, 0, 1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, again)
    assert not np.allclose(params["intro"]["kernel"], other["intro"]["kernel"])
    assert not np.allclose(params["enc0_block0"]["conv0"]["kernel"], other["enc0_block0"]["conv0"]["kernel"])
    assert not np.any(params["enc0_block0"]["conv1"]["kernel"])  # residual branches start at zero
    # ... and so does the output conv: the untrained network is the identity map.
    image = np.random.default_rng(0).random((1, 4, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(quick_jit(model.apply)({"params": params}, image), image)


@pytest.mark.parametrize("options", [
    dict(),
    dict(norm="group", downsample="pool", upsample="transpose", skip="concat", activation="relu"),
    dict(norm="none", upsample="resize_conv", remat=True),
])
def test_jit_and_vmap_agree(rng, options):
    model = Model(variant="tiny", **options)
    params = random_params(model, (1, 16, 16, 3))
    x = rng.random((3, 16, 12, 3)).astype(np.float32)
    batched = quick_jit(model.apply)({"params": params}, x)
    per_image = quick_jit(jax.vmap(lambda image: model.apply({"params": params}, image[None])[0]))(x)
    assert batched.shape == x.shape and batched.dtype == jnp.float32
    np.testing.assert_allclose(per_image, batched, rtol=1e-5, atol=1e-5)
    assert np.abs(batched - x).max() > 0.05  # the network does something


def test_remat_keeps_parameters_and_outputs(rng):
    small = dict(width=4, depth=1, blocks=1, middle_blocks=1)
    plain, remat = Model(**small), Model(remat=True, **small)
    x = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
    shapes = jax.eval_shape(plain.init, jax.random.key(0), x)
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(
        jax.eval_shape(remat.init, jax.random.key(0), x))
    assert re.search(r"remat|checkpoint", str(jax.make_jaxpr(remat.apply)(shapes, x)))
    assert not re.search(r"remat|checkpoint", str(jax.make_jaxpr(plain.apply)(shapes, x)))
    params = {"params": random_params(plain, x.shape)}
    images = rng.random(x.shape).astype(np.float32)
    out_plain, out_remat = quick_jit(lambda v: (plain.apply(v, images), remat.apply(v, images)))(params)
    np.testing.assert_allclose(out_remat, out_plain, rtol=1e-6, atol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_output(rng):
    model = Model(variant="tiny", dtype="bfloat16")
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype(jnp.float32)}
    inner = jax.make_jaxpr(model.apply)(shapes, x)
    assert "bf16" in str(inner)
    assert jax.eval_shape(model.apply, shapes, x).dtype == jnp.float32


def test_wrong_size_is_a_clear_error():
    model = Model(variant="tiny")
    with pytest.raises(ValueError, match="multiples of 4"):
        jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 16, 18, 3), jnp.float32))


def test_unshuffle_runs_at_lower_resolution_and_starts_at_identity(rng):
    model = Model(width=4, depth=1, blocks=1, middle_blocks=0, unshuffle=2)
    assert model.size_multiple == 4
    x = rng.random((1, 8, 12, 3)).astype(np.float32)
    params = quick_jit(model.init)(jax.random.key(0), x)["params"]
    assert params["intro"]["kernel"].shape == (3, 3, 12, 4)  # 2x2 sub-images of 3 channels
    assert params["ending"]["kernel"].shape[-1] == 12
    np.testing.assert_array_equal(quick_jit(model.apply)({"params": params}, x), x)
    trained = random_params(model, x.shape)
    assert np.abs(quick_jit(model.apply)({"params": trained}, x) - x).max() > 0.05
    with pytest.raises(ValueError, match="multiples of 4"):
        jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 8, 6, 3), jnp.float32))
    with pytest.raises(ValueError, match="unshuffle"):
        Model(unshuffle=0)
