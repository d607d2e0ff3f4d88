"""Tests for NAFNet: published parameter counts, initialisation, jit/vmap, and TLC's local pooling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.models.layers import count_params
from jdeblur.models.nafnet import Model, local_average_pool, resolve_kernels, tlc_window
from tests.models.model_fixtures import quick_jit, random_params


def _analytic_param_count(width, enc, middle, dec):
    """Parameters of the reference NAFNet counted from its layer list (3 input channels)."""
    # conv1 (c->2c), depthwise 3x3, conv3, sca, conv4 (c->2c), conv5, two norms, beta, gamma.
    block = lambda c: 7 * c * c + 33 * c  # noqa: E731
    total = 9 * 3 * width + width + 9 * width * 3 + 3  # intro, ending
    c = width
    for count in enc:
        total += count * block(c) + 4 * c * 2 * c + 2 * c  # blocks, 2x2 stride-2 conv to 2c
        c *= 2
    total += middle * block(c)
    for count in dec:
        total += 2 * c * c  # 1x1 conv to 2c, no bias
        c //= 2
        total += count * block(c)
    return total


@pytest.mark.parametrize("variant, published", [("width32", 17.1e6), ("width64", 67.9e6)])
def test_param_count_matches_published(variant, published):
    model = Model(variant=variant)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    count = count_params(shapes)
    assert abs(count - published) / published < 0.01
    assert count == _analytic_param_count(model.width, model.enc_blk_nums, model.middle_blk_num, model.dec_blk_nums)


@pytest.fixture(scope="module")
def small():
    """A two-level NAFNet with random parameters (every block, beta/gamma included, at work)."""
    model = Model(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))
    return model, random_params(model, (1, 16, 16, 3))


def test_init_is_deterministic_per_key():
    # The smallest NAFNet: compiling init costs seconds per parameter array on CPU.
    model = Model(width=4, enc_blk_nums=(1,), middle_blk_num=0, dec_blk_nums=(1,))
    init = quick_jit(model.init)
    x = jnp.zeros((1, 8, 8, 3))
    params, again, other = (init(jax.random.key(k), x)["params"] for k in (0, 0, 1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, again)
    assert not np.allclose(params["intro"]["kernel"], other["intro"]["kernel"])
    assert not np.allclose(params["enc0_block0"]["conv1"]["kernel"], other["enc0_block0"]["conv1"]["kernel"])
    # beta and gamma start at zero: every block starts as the identity.
    assert not np.any(params["dec0_block0"]["beta"]) and not np.any(params["dec0_block0"]["gamma"])


@pytest.fixture(scope="module")
def small_output(small):
    """A batch of images and the small NAFNet's float32 output for them (compiled once for two tests)."""
    model, params = small
    x = np.random.default_rng(7).random((2, 16, 24, 3)).astype(np.float32)
    return x, quick_jit(model.apply)({"params": params}, x)


def test_output_shape_dtype_jit_and_vmap(small, small_output):
    model, params = small
    x, batched = small_output
    assert batched.shape == x.shape and batched.dtype == jnp.float32
    per_image = quick_jit(jax.vmap(lambda image: model.apply({"params": params}, image[None])[0]))(x)
    np.testing.assert_allclose(per_image, batched, rtol=2e-5, atol=2e-5)
    assert np.abs(batched - x).max() > 0.1  # not a trivially identical pair of identity maps


def test_bfloat16_compute_returns_float32(small, small_output):
    model, params = small
    x, high = small_output
    low = quick_jit(model.clone(dtype=jnp.bfloat16).apply)({"params": params}, x)
    assert low.dtype == jnp.float32
    assert np.abs(low - high).max() < 0.05 * np.abs(high - x).max()


def test_wrong_size_is_a_clear_error(small):
    model, params = small
    with pytest.raises(ValueError, match="multiples of 4"):
        model.apply({"params": params}, jnp.zeros((1, 16, 18, 3)))


def _brute_force_tlc_pool(x, window):
    """Window means summed directly in float64, replicate-padded as the reference TLC does."""
    n, h, w, c = x.shape
    if window[0] >= h and window[1] >= w:
        return x.mean(axis=(1, 2), keepdims=True)
    kh, kw = min(window[0], h), min(window[1], w)
    out = np.empty((n, h - kh + 1, w - kw + 1, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = x[:, i:i + kh, j:j + kw].mean(axis=(1, 2))
    return np.pad(out, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)), mode="edge")


@pytest.mark.parametrize("window", [(4, 5), (7, 30), (9, 9), (9, 12)])  # the last covers the map: global
def test_local_average_pool_matches_brute_force(rng, window):
    x = (5.0 + rng.standard_normal((2, 9, 12, 3))).astype(np.float32)
    expected = _brute_force_tlc_pool(x.astype(np.float64), window)
    result = quick_jit(local_average_pool, static_argnums=1)(x, window)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=2e-5)
    per_image = quick_jit(jax.vmap(lambda image: local_average_pool(image[None], window)[0]))(x)
    np.testing.assert_allclose(per_image, expected, atol=2e-5)


def test_tlc_window_follows_reference_scaling():
    assert [tlc_window((256, 256), s) for s in (1, 2, 4, 8, 16)] == [
        (384, 384), (192, 192), (96, 96), (48, 48), (24, 24)]
    assert tlc_window((256, 192), 4) == (96, 72)
    # Not a multiple of 16: measured on the map of the zero-padded training input (local_arch.py
    # takes x.shape inside the model after check_image_size): 200 pads to 208, 208 * 300 // 200.
    assert [tlc_window((200, 200), s, size_multiple=16) for s in (1, 2, 4, 8, 16)] == [
        (312, 312), (156, 156), (78, 78), (39, 39), (19, 19)]


def test_tlc_changes_nothing_up_to_the_window_and_something_beyond(small, rng):
    model, params = small
    tlc = model.clone(tlc=True, train_size=16)  # windows of 24, 12 and 6 px at the three resolutions
    apply_both = quick_jit(lambda x: (model.apply({"params": params}, x), tlc.apply({"params": params}, x)))
    for size in (16, 24):  # the training patch, and 1.5x of it
        plain, local = apply_both(rng.random((1, size, size, 3)).astype(np.float32))
        np.testing.assert_array_equal(local, plain)
    plain, local = apply_both(rng.random((1, 40, 32, 3)).astype(np.float32))
    assert np.abs(local - plain).max() > 1e-3


def test_cpu_kernels_compute_the_xla_convolutions_function_and_gradients(rng):
    """'cpu' (shifted depthwise, matrix-product 1x1 convolutions; runs of blocks unrolled, or scanned as
    the trainer's module, the parameters other than 1x1 kernels selected by one-hot rows) against
    'xla' (XLA's convolutions, unrolled: the implementation before); scanned with remat too."""
    model = Model(width=4, enc_blk_nums=(2,), middle_blk_num=0, dec_blk_nums=(1,))
    params = random_params(model, (1, 8, 8, 3))
    x = rng.random((2, 8, 12, 3)).astype(np.float32)

    def loss(params, kernels, scan_blocks, remat):
        restored = model.clone(kernels=kernels, scan_blocks=scan_blocks, remat=remat).apply({"params": params}, x)
        return jnp.mean((restored - 0.5) ** 2)

    grad = quick_jit(jax.value_and_grad(loss), static_argnums=(1, 2, 3))
    ref_value, ref_grads = grad(params, "xla", True, False)
    for setting in ((False, False), (True, False), (True, True)):
        value, grads = grad(params, "cpu", *setting)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, ref_grads)
    # The run of two blocks is scanned in the trainer's module only, and never with XLA's kernels.
    programs = {kernels: [str(jax.make_jaxpr(m.apply)({"params": params}, x)) for m in (
        model.clone(kernels=kernels), model.clone(kernels=kernels).for_training())] for kernels in ("cpu", "xla")}
    assert [["scan" in p for p in programs[k]] for k in ("cpu", "xla")] == [[False, True], [False, False]]
    # Scanned, a block's own slices are its five 1x1 kernels (conv1, conv3, conv4, conv5, sca) and its
    # one-hot row; the rest of its parameters are selected by that row.
    scan, = [e for e in jax.make_jaxpr(model.clone(kernels="cpu").for_training().apply)({"params": params}, x).eqns
             if e.primitive.name == "scan"]
    per_block = [v.aval.shape for v in scan.invars[scan.params["num_consts"] + scan.params["num_carry"]:]]
    assert sorted(per_block) == [(2, 1, 1, 4, 4)] * 3 + [(2, 1, 1, 4, 8)] * 2 + [(2, 2)]
    # The scanned run's blocks get their own gradients, and the compared gradients are not ~0.
    assert np.abs(grads["enc0_block1"]["conv2"]["kernel"] - grads["enc0_block0"]["conv2"]["kernel"]).max() > 1e-3
    assert Model().kernels == "auto" and resolve_kernels("auto") == "cpu"  # the suite runs on the CPU
    with pytest.raises(ValueError, match="kernels"):
        model.clone(kernels="gpu").apply({"params": params}, x)
