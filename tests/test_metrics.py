"""Tests of jdeblur.metrics against scikit-image, independent float64 numpy formulas and reference values."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from jax.test_util import check_grads
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jdeblur import metrics


def skimage_ssim(a, b):
    """The pinned convention, as docs/conventions.md states it; gray images are HxWx1."""
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=-1)


def natural_pairs(rng, channels, shape=(48, 64)):
    """Sharp/degraded pairs of natural crops (noise, blur, both) and one random pair, NHWC float64."""
    image = data.astronaut() if channels == 3 else data.camera()[..., None]
    row, col = rng.integers(0, 200, size=2)
    sharp = image[row:row + shape[0], col:col + shape[1]] / 255.0
    noisy = sharp + 0.05 * rng.standard_normal(sharp.shape)
    blurred = scipy.ndimage.gaussian_filter(sharp, sigma=(1.5, 1.5, 0))
    preds = [noisy, blurred, blurred + 0.01 * rng.standard_normal(sharp.shape), rng.random(sharp.shape)]
    targets = [sharp, sharp, sharp, rng.random(sharp.shape)]
    return np.clip(np.stack(preds), 0, 1), np.stack(targets)


def test_ssim_matches_skimage_float64(rng, x64):
    for channels in (1, 3):
        pred, target = natural_pairs(rng, channels)
        ours = jax.jit(metrics.ssim)(pred, target)
        assert ours.dtype == jnp.float64 and ours.shape == (len(pred),)
        expected = [skimage_ssim(p, t) for p, t in zip(pred, target)]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)


def test_ssim_matches_skimage_float32(rng):
    for channels in (1, 3):
        pred, target = (a.astype(np.float32) for a in natural_pairs(rng, channels))
        ours = jax.jit(metrics.ssim)(pred, target)
        assert ours.dtype == jnp.float32
        expected = [skimage_ssim(p.astype(np.float64), t.astype(np.float64)) for p, t in zip(pred, target)]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_valid_filter_equals_reflect_filter_then_crop(rng, x64):
    channels = 3
    image = rng.random((30, 26, channels))
    ours = jax.jit(metrics._filter_valid, static_argnums=1)((image.reshape(30, 26 * channels),), channels)
    r = metrics.SSIM_RADIUS
    expected = scipy.ndimage.gaussian_filter(image, sigma=(1.5, 1.5, 0), mode="reflect", truncate=3.5)[r:-r, r:-r]
    np.testing.assert_allclose(ours.reshape(expected.shape), expected, rtol=0, atol=1e-12)


def test_ssim_in_row_strips_matches_skimage(rng, x64, monkeypatch):
    # Strips of 7 rows over 31 output rows: the last one overlaps the one before. The shape is
    # used by no other test, so no cached trace without strips can answer.
    monkeypatch.setattr(metrics, "_CPU_STRIP_ELEMENTS", 7 * 4 * 2 * 40 * 3)
    assert jax.default_backend() != "cpu" or metrics._rows_per_strip(2, 40 * 3, 31) == 7
    pred, target = (a[:2] for a in natural_pairs(rng, 3, shape=(41, 40)))
    ours = jax.jit(metrics._ssim_and_cs)(pred, target, 1.0)[0].mean(axis=-1)
    expected = [skimage_ssim(p, t) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)


def test_psnr_matches_skimage(rng, x64):
    pred, target = natural_pairs(rng, 3)
    ours = jax.jit(metrics.psnr)(pred, target)
    expected = [peak_signal_noise_ratio(t, p, data_range=1) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # data_range rescales consistently: the same images on a 0-255 scale score the same.
    np.testing.assert_allclose(metrics.psnr(255 * pred, 255 * target, data_range=255.0), expected, rtol=1e-12)
    np.testing.assert_allclose(metrics.ssim(255 * pred, 255 * target, data_range=255.0),
                               metrics.ssim(pred, target), atol=1e-12)


def numpy_ms_ssim(pred, target, weights=metrics.MS_SSIM_WEIGHTS):
    """tf.image.ssim_multiscale's recipe for one HWC pair, in float64 numpy with skimage for SSIM."""
    r = metrics.SSIM_RADIUS
    c2 = 0.03**2
    per_channel = []
    for channel in range(pred.shape[-1]):
        x, y = pred[..., channel], target[..., channel]
        value = 1.0
        for scale, weight in enumerate(weights):
            if scale:
                # TF: pad odd sizes at the end in SYMMETRIC mode, then 2x2 VALID average pooling.
                x, y = (np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2)), mode="symmetric") for a in (x, y))
                x, y = ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4 for a in (x, y))
            if scale == len(weights) - 1:
                term = skimage_ssim(x[..., None], y[..., None])
            else:
                blur = lambda a: scipy.ndimage.gaussian_filter(a, 1.5, truncate=3.5)[r:-r, r:-r]  # noqa: E731
                mx, my = blur(x), blur(y)
                cov = blur(x * y) - mx * my
                variances = blur(x * x) - mx**2 + blur(y * y) - my**2
                term = np.mean((2 * cov + c2) / (variances + c2))
            value *= max(term, 0.0) ** weight
        per_channel.append(value)
    return np.mean(per_channel)


def test_ms_ssim_matches_numpy_reference(rng, x64):
    # The minimum size, odd at every scale (161 -> 81 -> 41 -> 21 -> 11), exercises the padding.
    sharp = data.astronaut()[100:261, 150:333] / 255.0
    noisy = np.clip(sharp + 0.1 * rng.standard_normal(sharp.shape), 0, 1)
    blurred = scipy.ndimage.gaussian_filter(sharp, sigma=(2.0, 2.0, 0))
    pred = np.stack([noisy, blurred, 1.0 - sharp])  # the last is anti-correlated: cs < 0
    target = np.stack([sharp, sharp, sharp])
    ours = jax.jit(metrics.ms_ssim)(pred, target)
    expected = [numpy_ms_ssim(p, t) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
    assert 0.0 < expected[0] < expected[1] < 1.0 and expected[2] == 0.0


def test_ms_ssim_minimum_size():
    # 161 pixels pass: test_ms_ssim_matches_numpy_reference scores 161x183 images.
    image = np.zeros((160, 170, 1), np.float32)
    with pytest.raises(ValueError, match="at least 161x161"):
        metrics.ms_ssim(image, image)
    with pytest.raises(ValueError, match="at least 41x41"):  # three scales: (11 - 1) * 4 + 1
        metrics.ms_ssim(image[:40], image[:40], weights=(0.2, 0.3, 0.5))


def test_quantize_crop_and_y_channel_match_independent_formulas(rng, x64):
    pred, target = natural_pairs(rng, 3)
    pred = pred + 0.02 * rng.standard_normal(pred.shape)  # some values outside [0, 1]: clipped
    to_uint8_levels = lambda a: np.round(np.clip(a, 0, 1) * 255) / 255  # noqa: E731
    luma = lambda a: (16 + a @ np.array([65.481, 128.553, 24.966])) / 255  # noqa: E731
    crop = lambda a: a[3:-3, 3:-3]  # noqa: E731

    np.testing.assert_allclose(
        metrics.psnr(pred, target, quantize=True),
        [peak_signal_noise_ratio(to_uint8_levels(t), to_uint8_levels(p), data_range=1) for p, t in zip(pred, target)],
        rtol=1e-12)
    np.testing.assert_allclose(
        metrics.ssim(pred, target, crop_border=3),
        [skimage_ssim(crop(p), crop(t)) for p, t in zip(pred, target)], atol=1e-10)
    np.testing.assert_allclose(
        metrics.ssim(pred, target, y_channel=True),
        [skimage_ssim(luma(p)[..., None], luma(t)[..., None]) for p, t in zip(pred, target)], atol=1e-10)
    np.testing.assert_allclose(
        metrics.psnr(pred, target, y_channel=True, crop_border=3),
        [peak_signal_noise_ratio(crop(luma(t)), crop(luma(p)), data_range=1) for p, t in zip(pred, target)],
        rtol=1e-12)


def basicsr_psnr_ssim_y(pred, target):
    """BasicSR's calculate_psnr/calculate_ssim(test_y_channel=True, crop_border=0) on uint8 images.

    Re-derived from basicsr/metrics/psnr_ssim.py: Y on the 0-255 scale, not rounded; SSIM with
    an 11x11 sigma-1.5 window and [5:-5] crop, C1 = (0.01 * 255)**2.
    """
    images = [np.round(np.clip(a, 0, 1) * 255).astype(np.uint8).astype(np.float64) for a in (pred, target)]
    y1, y2 = (a / 255 @ np.array([65.481, 128.553, 24.966]) + 16 for a in images)
    psnr = 20 * np.log10(255 / np.sqrt(np.mean((y1 - y2) ** 2)))
    taps = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    window = np.outer(taps, taps) / taps.sum() ** 2
    filt = lambda a: scipy.ndimage.correlate(a, window)[5:-5, 5:-5]  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m1, m2 = filt(y1), filt(y2)
    s1, s2, s12 = filt(y1 * y1) - m1**2, filt(y2 * y2) - m2**2, filt(y1 * y2) - m1 * m2
    ssim = np.mean((2 * m1 * m2 + c1) * (2 * s12 + c2) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2)))
    return psnr, ssim


def test_score_conventions(rng, x64):
    pred, target = natural_pairs(rng, 3)
    scores = metrics.score(pred, target, "basicsr_y")
    expected = np.array([basicsr_psnr_ssim_y(p, t) for p, t in zip(pred, target)])
    np.testing.assert_allclose(scores["psnr"], expected[:, 0], rtol=1e-10)
    np.testing.assert_allclose(scores["ssim"], expected[:, 1], atol=1e-10)

    assert set(metrics.CONVENTIONS) == {"default", "uint8", "basicsr_y", "nafnet", "restormer"}
    for name, convention in metrics.CONVENTIONS.items():
        assert convention.name == name
        for key, value in metrics.score(pred, target, convention).items():
            options = convention.ssim_options if key == "ssim" else convention.options
            np.testing.assert_array_equal(value, getattr(metrics, key)(pred, target, **options))
    default = metrics.score(pred, target)
    np.testing.assert_array_equal(default["psnr"], metrics.psnr(pred, target))
    assert not np.allclose(default["psnr"], metrics.score(pred, target, "uint8")["psnr"], rtol=1e-9)
    with pytest.raises(ValueError, match="convention"):
        metrics.score(pred, target, "matlab")


FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def matlab_ssim_rgb(pred, target):
    """MATLAB's ``ssim(A, ref)`` on HxWx3 uint8 arrays as its documentation describes it, in float64.

    An RGB array is a volume by default ('SSS' data format): a 3-D Gaussian window of sigma
    ('Radius') 1.5 and size 2 * ceil(3 * 1.5) + 1 = 11, 'replicate' padding (scipy's 'nearest'),
    DynamicRange 255 for uint8, C1 = (0.01 * 255)**2, C2 = (0.03 * 255)**2, C3 = C2 / 2 and
    Exponents [1 1 1] (the simplified formula), the mean of the whole map.
    """
    x, y = (a.astype(np.float64) for a in (pred, target))
    blur = lambda a: scipy.ndimage.gaussian_filter(a, 1.5, mode="nearest", truncate=5 / 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sx, sy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return np.mean((2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sx + sy + c2)))


def official_pairs():
    """The uint8 RGB pairs of the NAFNet fixture (tools/make_nafnet_fixture.py), NHWC, with its reference values."""
    fixture = np.load(FIXTURES / "metrics" / "nafnet_ssim.npz")
    count = len([k for k in fixture.files if k.startswith("pred")])
    return [np.stack([fixture[f"{key}{i}"] for i in range(count)]) for key in ("pred", "target", "psnr", "ssim")]


def test_nafnet_convention_matches_its_basicsr_fork():
    # The reference values: the official calculate_psnr / calculate_ssim (3-D window) run on these
    # pairs by tools/make_nafnet_fixture.py, in float32 (the reference's own precision: its SSIM
    # is 1.1e-6 from a float64 computation on them).
    pred, target, psnr, ssim = official_pairs()
    scores = metrics.score(pred / np.float32(255), target / np.float32(255), "nafnet")
    np.testing.assert_allclose(scores["psnr"], psnr, atol=1e-4)
    np.testing.assert_allclose(scores["ssim"], ssim, atol=2e-6)


def test_restormer_convention_matches_matlab_ssim_of_rgb(rng, x64):
    pred, target, _, _ = official_pairs()
    natural = natural_pairs(rng, 3, shape=pred.shape[1:3])
    pred, target = (np.concatenate([a, np.round(b * 255).astype(np.uint8)]) for a, b in zip((pred, target), natural))
    scores = metrics.score(pred / 255.0, target / 255.0, "restormer")
    np.testing.assert_allclose(scores["ssim"], [matlab_ssim_rgb(p, t) for p, t in zip(pred, target)], atol=1e-10)
    mse = np.mean((pred.astype(np.float64) - target) ** 2, axis=(1, 2, 3))  # MATLAB's psnr of uint8 arrays
    np.testing.assert_allclose(scores["psnr"], 10 * np.log10(255**2 / mse), rtol=1e-10)
    per_channel = metrics.score(pred / 255.0, target / 255.0, "uint8")["ssim"]
    assert np.all(np.abs(per_channel - scores["ssim"]) > 1e-4)  # the 3-D window is not the per-channel SSIM


# Two scales (images >= 21 pixels) run every code path of five at a fraction of the compile time.
TWO_SCALES = (0.4, 0.6)


def all_metrics(pred, target, ms_ssim_weights=TWO_SCALES):
    """PSNR, SSIM and MS-SSIM stacked on a last axis: one compilation checks all three."""
    return jnp.stack([metrics.psnr(pred, target), metrics.ssim(pred, target),
                      metrics.ms_ssim(pred, target, weights=ms_ssim_weights)], axis=-1)


def test_gradients_match_finite_differences(rng, x64):
    pred, target = natural_pairs(rng, 3, shape=(24, 22))
    pred, target = pred[1:3, ..., :2], target[1:3, ..., :2]
    # PSNR scaled down so that no metric dominates the sum.
    weights = jnp.array([0.01, 1.0, 1.0])
    check_grads(jax.jit(lambda p: jnp.sum(all_metrics(p, target) * weights)), (pred,), order=1, modes=("rev",))


def test_forward_mode_is_psnrs_only_as_documented(rng):
    """SSIM and MS-SSIM: reverse mode only (the module docstring says so); jacrev works, jvp says why not."""
    pred, target = natural_pairs(rng, 1, shape=(24, 22))
    pred, target = jnp.asarray(pred[:1], jnp.float32), jnp.asarray(target[:1], jnp.float32)
    for metric in (metrics.ssim, lambda p, t: metrics.ms_ssim(p, t, weights=(0.5, 0.5))):
        with pytest.raises(TypeError, match="forward-mode"):
            jax.jvp(lambda p: metric(p, target), (pred,), (jnp.ones_like(pred),))
        assert jax.jacrev(lambda p: metric(p, target))(pred).shape == (1, *pred.shape)
    _, tangent = jax.jvp(lambda p: metrics.psnr(p, target), (pred,), (jnp.ones_like(pred),))
    assert np.isfinite(tangent).all()


def test_gradients_finite_when_pred_equals_target(rng):
    image = jnp.asarray(rng.random((24, 22, 1)), jnp.float32)
    # The second pair is anti-correlated: MS-SSIM clips its negative contrast-structure terms,
    # so it scores 0 with a zero gradient, not NaN.
    pred, target = jnp.stack([image, 1.0 - image]), jnp.stack([image, image])
    values = all_metrics(pred, target)
    np.testing.assert_allclose(values[0], [100.0, 1.0, 1.0], atol=1e-5)
    assert values[1, 2] == 0.0
    # Image 0 gets the gradient of all three metrics (a NaN in any would show), image 1 that of
    # MS-SSIM alone.
    grad = jax.jit(jax.grad(lambda p: all_metrics(p, target)[0].sum() + all_metrics(p, target)[1, 2]))(pred)
    assert np.all(np.isfinite(grad[0]))
    assert np.all(grad[1] == 0.0)


def test_batch_vmap_and_single_image_agree(rng):
    pred, target = (jnp.asarray(a[:2], jnp.float32) for a in natural_pairs(rng, 3, shape=(30, 34)))
    batched = jax.jit(all_metrics)(pred, target)
    assert batched.shape == (2, 3)
    np.testing.assert_allclose(jax.vmap(all_metrics)(pred, target), batched, rtol=1e-6)
    np.testing.assert_allclose([all_metrics(p, t) for p, t in zip(pred, target)], batched, rtol=1e-6)


def test_rgb_to_y_matches_bt601():
    rgb = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.9]])
    expected = (16 + rgb @ np.array([65.481, 128.553, 24.966])) / 255  # MATLAB rgb2ycbcr, /255
    np.testing.assert_allclose(metrics.rgb_to_y(rgb)[:, 0], expected, rtol=1e-6)
    assert np.isclose(expected[0], 16 / 255) and np.isclose(expected[1], 235 / 255)


@pytest.mark.parametrize(
    "pred_shape, target_shape, kwargs, match",
    [
        ((32, 32), (32, 32), {}, "pred: expected HWC or NHWC"),
        ((2, 32, 32, 3), (2, 32, 30, 3), {}, "target: expected the shape of pred"),
        ((32, 32, 3), (32, 32, 3), {"crop_border": -1}, "crop_border"),
        ((32, 32, 1), (32, 32, 1), {"y_channel": True}, "y_channel=True needs 3"),
        ((10, 32, 3), (10, 32, 3), {}, "at least 11x11"),
        ((32, 32, 3), (32, 32, 3), {"crop_border": 11}, "after crop_border=11"),
        ((32, 32, 3), (32, 32, 3), {"data_range": 0.0}, "data_range: expected a finite value > 0"),
    ],
)
def test_bad_shapes_and_options_raise(pred_shape, target_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.ssim(np.zeros(pred_shape, np.float32), np.zeros(target_shape, np.float32), **kwargs)


def test_bad_values_raise():
    image = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="pred: expected finite"):
        metrics.psnr(np.full_like(image, np.nan), image)
    with pytest.raises(ValueError, match="target: expected a floating image"):
        metrics.psnr(image, image.astype(np.uint8))
    with pytest.raises(ValueError, match="image: expected 3 RGB"):
        metrics.rgb_to_y(image[..., :2])
