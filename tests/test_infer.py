"""Tests for full-image restoration: any size, formats, batches, budgets, tiling and self-ensemble."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur import infer
from jdeblur.models import nafnet, unet
from tests.models.model_fixtures import quick_jit, random_params


def _box_sum(radius):
    """Zero-padded box sum over (2r+1)^2 pixels: a jittable function of known receptive field."""
    window = (1, 2 * radius + 1, 2 * radius + 1, 1)
    return lambda x: jax.lax.reduce_window(x, 0.0, jax.lax.add, window, (1, 1, 1, 1), "SAME") / window[1] ** 2


def _color_shift(x):
    """Non-equivariant test function: mixes a row ramp into the image."""
    return x + jnp.linspace(0.0, 0.1, x.shape[1])[None, :, None, None]


@pytest.mark.parametrize("module", [
    unet.Model(variant="tiny"),
    # Two levels keep compilation short; TLC windows of 24 px make the pooling local at 40x56.
    nafnet.Model(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1), tlc=True, train_size=16),
], ids=["unet", "nafnet-tlc"])
def test_models_restore_odd_sizes(rng, module):
    params = random_params(module, (1, 16, 16, 3))
    image = rng.random((37, 53, 3)).astype(np.float32)
    out = infer.restore_with_model(module, params, image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1 and np.abs(out - image).max() > 0.01


def test_unet_tiled_equals_untiled(rng):
    module = unet.Model(variant="tiny")  # receptive-field radius 31 px (measured with jax.grad)
    params = random_params(module, (1, 16, 16, 3))
    images = rng.random((2, 70, 101, 3)).astype(np.float32)
    whole = infer.restore_with_model(module, params, images, clip=False)
    # margin (overlap - blend) // 2 = 32 >= 31; tile offsets are multiples of size_multiple 4.
    tiled = infer.restore_with_model(module, params, images, tile=80, overlap=68, blend=4, clip=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    short = infer.restore_with_model(module, params, images, tile=80, overlap=24, clip=False)
    assert np.abs(short - whole).max() > 1e-4  # the test can fail: too little context is visible


def test_budget_tiles_and_bounds_every_call(rng):
    shapes = []

    def recording_box(x):
        shapes.append(x.shape)  # runs at trace time: once per compiled shape
        return _box_sum(3)(x)

    image = rng.random((150, 99, 3)).astype(np.float32)
    whole = infer.restore(recording_box, image, clip=False)
    tiled = infer.restore(recording_box, image, max_pixels=48 * 48, overlap=16, blend=4, clip=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    assert shapes == [(1, 150, 99, 3), (1, 48, 48, 3)]
    assert infer.restore(recording_box, image, max_pixels=150 * 99, clip=False).shape == image.shape
    assert len(shapes) == 2  # within the budget: restored whole, no new compilation


def test_zero_padding_is_what_the_function_sees(rng):
    # The image's mean over what the model sees: the padded image. Zero padding at the bottom/right
    # lowers it by the padded area's share; reflect padding sees reflected pixels.
    image = rng.random((2, 13, 10, 3)).astype(np.float32)
    seen_mean = lambda x: jnp.broadcast_to(jnp.mean(x, axis=(1, 2), keepdims=True), x.shape)  # noqa: E731
    zero = infer.restore(seen_mean, image, size_multiple=8, pad="zero")
    expected = image.sum(axis=(1, 2), keepdims=True) / (16 * 16)
    np.testing.assert_allclose(zero, np.broadcast_to(expected, image.shape), rtol=1e-6)
    reflect = infer.restore(seen_mean, image, size_multiple=8)
    padded = np.pad(image, ((0, 0), (0, 3), (0, 6), (0, 0)), mode="reflect")
    np.testing.assert_allclose(reflect, np.broadcast_to(padded.mean(axis=(1, 2), keepdims=True), image.shape),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="pad"):
        infer.restore(seen_mean, image, size_multiple=8, pad="edge")


def test_ensemble_of_equivariant_function_is_the_function(rng):
    images = rng.random((2, 24, 40, 3)).astype(np.float32)
    pointwise = lambda x: jnp.sqrt(x) * 0.5
    np.testing.assert_allclose(infer.restore(pointwise, images, ensemble=True), np.sqrt(images) * 0.5, atol=1e-6)
    box = _box_sum(2)
    np.testing.assert_allclose(infer.restore(box, images, ensemble=True), infer.restore(box, images), atol=1e-6)


def test_ensemble_averages_the_eight_transforms(rng):
    image = rng.random((12, 20, 3)).astype(np.float32)
    expected = np.zeros_like(image, dtype=np.float64)
    for turns in range(4):
        for flip in (False, True):
            t = np.rot90(image, turns)
            t = t[:, ::-1] if flip else t
            y = np.asarray(_color_shift(t[None]))[0]
            y = y[:, ::-1] if flip else y
            expected += np.rot90(y, -turns) / 8
    np.testing.assert_allclose(infer.restore(_color_shift, image, ensemble=True, clip=False), expected, atol=1e-6)
    assert np.abs(expected - np.asarray(_color_shift(image[None]))[0]).max() > 0.01


def test_self_ensemble_jit_and_vmap(rng):
    x = rng.random((3, 8, 8, 3)).astype(np.float32)
    batched = quick_jit(infer.self_ensemble, static_argnums=0)(_color_shift, x)
    per_image = quick_jit(jax.vmap(lambda image: infer.self_ensemble(_color_shift, image[None])[0]))(x)
    np.testing.assert_allclose(per_image, batched, atol=1e-6)
    np.testing.assert_allclose(batched[0], infer.restore(_color_shift, x[0], ensemble=True, clip=False), atol=1e-6)


def test_parameters_are_arguments_not_constants(rng):
    traces = []

    def scaled(weight, x):
        traces.append(x.shape)  # runs at trace time only
        return x * weight

    image = rng.random((16, 16, 3)).astype(np.float32)
    for weight in (0.5, 0.25):
        out = infer.restore(jax.tree_util.Partial(scaled, jnp.float32(weight)), image)
        np.testing.assert_allclose(out, image * weight, rtol=1e-6)
    assert len(traces) == 1  # new parameter values, same compiled program


@pytest.mark.parametrize("shape, dtype", [
    ((20, 30), np.uint8),  # grayscale HW
    ((20, 30, 1), np.float32),  # grayscale HWC
    ((20, 30, 2), np.uint16),  # gray + alpha
    ((20, 30, 3), np.float64),
    ((4, 20, 30, 4), np.uint8),  # a batch of RGBA
])
def test_formats_round_trip_shape_dtype_and_alpha(rng, shape, dtype):
    if np.issubdtype(dtype, np.integer):
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    same = infer.restore(lambda x: x, image, size_multiple=8)
    assert same.shape == image.shape and same.dtype == image.dtype
    np.testing.assert_allclose(same, image, atol=1e-6)  # integers: exactly

    darker = infer.restore(lambda x: x * 0.5, image, size_multiple=8)
    channels = shape[-1] if len(shape) == 3 or len(shape) == 4 else 1
    if channels in (2, 4):
        np.testing.assert_array_equal(darker[..., -1], image[..., -1])  # alpha untouched
    color = darker[..., :3] if channels == 4 else darker[..., :1] if channels == 2 else darker
    expected = image[..., :3] if channels == 4 else image[..., :1] if channels == 2 else image
    scale = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1
    np.testing.assert_allclose(color.astype(np.float64), expected * 0.5, atol=0.5 * (scale > 1) + 1e-6)


def test_batches_and_lists(rng):
    batch = rng.random((3, 17, 22, 3)).astype(np.float32)
    box = _box_sum(1)
    together = infer.restore(box, batch)
    one_by_one = np.stack([infer.restore(box, image) for image in batch])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    sizes = [(9, 14, 3), (17, 22, 3)]
    outputs = infer.restore(box, [batch[1, :9, :14], batch[1]])
    assert [o.shape for o in outputs] == sizes
    np.testing.assert_allclose(outputs[1], one_by_one[1], atol=1e-6)


@pytest.mark.parametrize("image, message", [
    (np.zeros((8, 8, 5), np.float32), "1, 2, 3 or 4 channels"),
    (np.zeros((8, 8, 3), np.int32), "float, uint8 or uint16"),
    (np.full((8, 8, 3), np.nan, np.float32), "finite"),
    (np.zeros((2, 2, 8, 8, 3), np.float32), "HW, HWC or NHWC"),
])
def test_bad_images_are_named(image, message):
    with pytest.raises(ValueError, match=f"images: .*{message}"):
        infer.restore(lambda x: x, image)
