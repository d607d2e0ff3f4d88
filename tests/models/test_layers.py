"""Tests for the shared model blocks: pixel (un)shuffle against PyTorch's definition, the matmul transposed,
strided, 1x1 and 3x3 convolutions against Flax's, channel LayerNorm in float64."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.models.layers import (
    Conv1x1,
    Conv3x3,
    StridedConv2x2,
    TransposeConv2x2,
    channel_layer_norm,
    count_params,
    pixel_shuffle,
    pixel_unshuffle,
    simple_gate,
)
from tests.models.model_fixtures import quick_jit


def _torch_pixel_shuffle(x, factor):
    """torch.nn.PixelShuffle written out index by index, transposed to NHWC."""
    n, h, w, channels = x.shape
    out_c = channels // factor ** 2
    out = np.empty((n, h * factor, w * factor, out_c), x.dtype)
    for c in range(out_c):
        for i in range(factor):
            for j in range(factor):
                out[:, i::factor, j::factor, c] = x[..., c * factor * factor + i * factor + j]
    return out


@pytest.mark.parametrize("factor", [2, 3])
def test_pixel_shuffle_matches_torch_definition(rng, factor):
    x = rng.standard_normal((2, 5, 4, 2 * factor * factor)).astype(np.float32)
    np.testing.assert_array_equal(pixel_shuffle(jnp.asarray(x), factor), _torch_pixel_shuffle(x, factor))
    np.testing.assert_array_equal(jax.jit(pixel_shuffle, static_argnums=1)(x, factor),
                                  _torch_pixel_shuffle(x, factor))
    per_image = jax.vmap(lambda image: pixel_shuffle(image[None], factor)[0])(x)
    np.testing.assert_array_equal(per_image, _torch_pixel_shuffle(x, factor))


def test_pixel_shuffle_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="channels"):
        pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)


@pytest.mark.parametrize("factor", [2, 3])
def test_pixel_unshuffle_inverts_pixel_shuffle(rng, factor):
    x = rng.standard_normal((2, 3 * factor, 2 * factor, 3)).astype(np.float32)
    packed = pixel_unshuffle(jnp.asarray(x), factor)
    assert packed.shape == (2, 3, 2, 3 * factor * factor)
    np.testing.assert_array_equal(_torch_pixel_shuffle(np.asarray(packed), factor), x)
    # Channel 0 of the packed image is the sub-image starting at (0, 0); channel f*f at channel 1's.
    np.testing.assert_array_equal(packed[..., 0], x[:, ::factor, ::factor, 0])
    np.testing.assert_array_equal(packed[..., factor * factor + 1], x[:, ::factor, 1::factor, 1])
    with pytest.raises(ValueError, match="divisible by"):
        pixel_unshuffle(jnp.zeros((1, 4, 5, 3)), 2)


def test_transpose_conv_2x2_equals_flax_conv_transpose(rng):
    x = rng.standard_normal((2, 5, 3, 6)).astype(np.float32)
    ours = TransposeConv2x2(4)
    flax_conv = nn.ConvTranspose(4, (2, 2), strides=(2, 2), padding="VALID")
    shapes = jax.eval_shape(flax_conv.init, jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, jax.eval_shape(ours.init, jax.random.key(0), x)) == jax.tree.map(jnp.shape, shapes)
    params = {"params": {"kernel": rng.standard_normal((2, 2, 6, 4)).astype(np.float32),
                         "bias": rng.standard_normal(4).astype(np.float32)}}
    expected = flax_conv.apply(params, x)
    np.testing.assert_allclose(ours.apply(params, x), expected, rtol=1e-5, atol=1e-5)
    # The gradients (the reason for the rewrite) agree too.
    cotangent = rng.standard_normal(expected.shape).astype(np.float32)
    grads = [jax.grad(lambda p, x: jnp.vdot(m.apply(p, x), cotangent), argnums=(0, 1))(params, x)
             for m in (ours, flax_conv)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *grads)
    half = TransposeConv2x2(4, dtype=jnp.bfloat16).apply(params, x)
    assert half.dtype == jnp.bfloat16 and np.abs(np.asarray(half, np.float32) - expected).max() < 0.1


def assert_same_conv_with_gradients(rng, ours, flax_conv, x):
    """``ours`` has ``flax_conv``'s parameters (same initialisation) and computes its outputs and gradients."""
    params = quick_jit(ours.init)(jax.random.key(1), x)
    jax.tree.map(np.testing.assert_array_equal, params, quick_jit(flax_conv.init)(jax.random.key(1), x))
    params = jax.tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params)
    expected = flax_conv.apply(params, x)
    np.testing.assert_allclose(ours.apply(params, x), expected, rtol=1e-5, atol=1e-5)
    cotangent = rng.standard_normal(expected.shape).astype(np.float32)
    grads = [quick_jit(jax.grad(lambda p, x, m=m: jnp.vdot(m.apply(p, x), cotangent), argnums=(0, 1)))(params, x)
             for m in (ours, flax_conv)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *grads)
    return params


@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_1x1_equals_flax_conv_with_gradients(rng, use_bias):
    x = rng.standard_normal((2, 5, 3, 6)).astype(np.float32)
    assert_same_conv_with_gradients(rng, Conv1x1(4, use_bias=use_bias), nn.Conv(4, (1, 1), use_bias=use_bias), x)


@pytest.mark.parametrize("channels, features, use_bias", [(3, 5, True), (5, 3, False)])
def test_conv_3x3_equals_flax_conv_with_gradients(rng, channels, features, use_bias):
    x = rng.standard_normal((2, 5, 4, channels)).astype(np.float32)
    assert_same_conv_with_gradients(rng, Conv3x3(features, use_bias=use_bias),
                                    nn.Conv(features, (3, 3), use_bias=use_bias), x)


def test_strided_conv_2x2_equals_flax_strided_conv_with_gradients(rng):
    x = rng.standard_normal((2, 6, 4, 5)).astype(np.float32)
    ours = StridedConv2x2(3)
    params = assert_same_conv_with_gradients(rng, ours, nn.Conv(3, (2, 2), strides=(2, 2), padding="VALID"), x)
    with pytest.raises(ValueError, match="even height and width"):
        ours.apply(params, x[:, :5])


def test_channel_layer_norm_matches_float64(rng):
    x = (3.0 + rng.standard_normal((2, 4, 6, 8))).astype(np.float32)
    norm = channel_layer_norm(dtype=jnp.float32, param_dtype=jnp.float32, name=None)
    scale = rng.standard_normal(8)
    bias = rng.standard_normal(8)
    params = {"params": {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}
    x64 = x.astype(np.float64)
    mean = x64.mean(-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(-1, keepdims=True)
    expected = (x64 - mean) / np.sqrt(var + 1e-6) * scale + bias
    np.testing.assert_allclose(norm.apply(params, x), expected, atol=1e-5)


def test_simple_gate_multiplies_halves(rng):
    x = rng.standard_normal((1, 2, 3, 6)).astype(np.float32)
    np.testing.assert_allclose(simple_gate(x), x[..., :3] * x[..., 3:], rtol=1e-6)


def test_count_params_counts_arrays_and_shapes():
    tree = {"a": jnp.zeros((3, 4)), "b": [jax.ShapeDtypeStruct((2, 5, 7), jnp.float32)]}
    assert count_params(tree) == 12 + 70
