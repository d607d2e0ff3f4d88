"""Noise models: empirical moments against theory in float64, per-image levels, keys, gradients."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.physics.noise import (
    estimate_noise_sigma,
    gaussian_noise,
    poisson_gaussian_noise,
    poisson_noise,
    quantize_8bit,
    sample_noise_levels,
)

# Pixels per image in the moment tests: the standard error of a variance estimate is about
# sqrt(2 / N) = 1.3% of it, so a 6% tolerance is more than four standard errors. All the Poisson
# tests share this shape and float64, because each new shape compiles the sampler anew (seconds).
_SHAPE = (2, 96, 128, 3)
_VARIANCE_RTOL = 0.06


def _key(rng):
    return jax.random.key(int(rng.integers(2**31)))


def _assert_reproducible_by_key(noisy, rng):
    """Same key, same noise; another key, other noise."""
    key, other = _key(rng), _key(rng)
    np.testing.assert_array_equal(noisy(key), noisy(key))
    assert not np.allclose(noisy(key), noisy(other))


def _assert_moments(residual, variance, pixels_per_image):
    """Per-image mean 0 (within 5 standard errors) and mean square ``variance`` (per image)."""
    residual = np.asarray(residual, np.float64).reshape(residual.shape[0], -1)
    assert np.all(np.abs(residual.mean(1)) <= 5 * np.sqrt(variance / pixels_per_image))
    np.testing.assert_allclose((residual**2).mean(1), variance, rtol=_VARIANCE_RTOL)


def test_gaussian_noise_has_the_per_image_sigma(rng, x64):
    x = rng.random(_SHAPE)
    sigma = np.array([0.05, 0.2])
    y = gaussian_noise(_key(rng), x, sigma)
    assert y.dtype == jnp.float64 and y.shape == x.shape
    _assert_moments(y - x, sigma**2, x[0].size)
    _assert_reproducible_by_key(lambda key: gaussian_noise(key, x, sigma), rng)


def test_poisson_noise_is_counts_over_peak_with_variance_x_over_peak(rng, x64):
    x = rng.uniform(0.1, 1, _SHAPE)
    peak = np.array([20.0, 300.0])
    y = np.asarray(poisson_noise(_key(rng), x, peak=peak))
    counts = y * peak[:, None, None, None]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    # E[y - x] = 0 and E[(y - x)^2] = x / peak: whiten by the expected standard deviation.
    _assert_moments((y - x) / np.sqrt(x / peak[:, None, None, None]), 1.0, x[0].size)
    _assert_reproducible_by_key(lambda key: poisson_noise(key, x, peak=peak), rng)


def test_poisson_gaussian_noise_adds_the_variances(rng, x64):
    x = np.full(_SHAPE, 0.5)
    peak, sigma = np.array([50.0, 500.0]), np.array([0.02, 0.1])
    y = poisson_gaussian_noise(_key(rng), x, peak=peak, sigma=sigma)
    _assert_moments(y - x, 0.5 / peak + sigma**2, x[0].size)
    _assert_reproducible_by_key(
        lambda key: poisson_gaussian_noise(key, x, peak=peak, sigma=sigma), rng
    )


def test_scalar_sigma_on_a_single_float32_image(rng):
    x = rng.random((16, 16, 3)).astype(np.float32)
    key = _key(rng)
    np.testing.assert_array_equal(gaussian_noise(key, x, 0.0), x)
    y = gaussian_noise(key, x, 0.1)
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert 0.08 < np.std(y - x) < 0.12


def test_quantize_8bit_rounds_to_the_256_levels(rng):
    x = rng.uniform(-0.2, 1.2, (2, 8, 8, 3)).astype(np.float32)
    q = np.asarray(quantize_8bit(x))
    expected = np.round(np.clip(x.astype(np.float64), 0, 1) * 255) / 255
    np.testing.assert_allclose(q, expected, atol=1e-7)
    levels = q * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    inside = (x >= 0) & (x <= 1)
    assert np.all(np.abs(q - x)[inside] <= 0.5 / 255 + 1e-7)
    np.testing.assert_array_equal(quantize_8bit(x, straight_through=True), q)


def test_gradients_pass_through_noise_and_straight_through_rounding(rng, x64):
    x = rng.uniform(0.2, 0.8, _SHAPE)
    key = _key(rng)
    for noisy in (
        lambda x: gaussian_noise(key, x, jnp.array([0.1, 0.2])),
        lambda x: poisson_noise(key, x, peak=jnp.array([10.0, 100.0])),
        lambda x: poisson_gaussian_noise(key, x, peak=10.0, sigma=0.1),
        lambda x: quantize_8bit(x, straight_through=True),
    ):
        np.testing.assert_allclose(jax.grad(lambda x: noisy(x).sum())(x), 1)
    np.testing.assert_array_equal(jax.grad(lambda x: quantize_8bit(x).sum())(x), 0)


def test_noise_is_jittable_and_vmappable(rng, x64):
    # vmap over a stack of batches, so that each slice reuses the sampler compiled for _SHAPE.
    # (Poisson noise is jitted and vmapped in the degradation's tests.)
    x = rng.random((2,) + _SHAPE)
    keys = jax.random.split(_key(rng), 2)
    sigma = rng.uniform(0, 0.2, (2, 2))
    mapped = jax.jit(jax.vmap(gaussian_noise))(keys, x, sigma)
    for i in range(2):
        np.testing.assert_allclose(mapped[i], gaussian_noise(keys[i], x[i], sigma[i]), atol=1e-12)
    quantized = jax.jit(jax.vmap(quantize_8bit))(x)
    np.testing.assert_array_equal(quantized, quantize_8bit(x))


def test_sampled_levels_are_uniform_or_log_uniform_in_range(x64):
    key = jax.random.key(5)
    n = 20_000
    levels = np.asarray(sample_noise_levels(key, n, low=0.01, high=0.05))
    assert levels.shape == (n,) and levels.min() >= 0.01 and levels.max() <= 0.05
    # Uniform: mean (low + high) / 2, standard deviation (high - low) / sqrt(12).
    np.testing.assert_allclose(levels.mean(), 0.03, atol=5 * 0.04 / np.sqrt(12 * n))
    np.testing.assert_allclose(levels.std(), 0.04 / np.sqrt(12), rtol=0.03)
    log_levels = np.log(np.asarray(sample_noise_levels(key, n, low=1.0, high=1000.0,
                                                       log_uniform=True)))
    assert log_levels.min() >= -1e-9 and log_levels.max() <= np.log(1000.0) + 1e-9
    np.testing.assert_allclose(log_levels.mean(), np.log(1000) / 2, atol=5 * 6.91 / np.sqrt(12 * n))
    np.testing.assert_array_equal(sample_noise_levels(key, 4, low=0.0, high=1.0),
                                  sample_noise_levels(key, 4, low=0.0, high=1.0))
    np.testing.assert_array_equal(sample_noise_levels(key, 3, low=0.2, high=0.2), 0.2)
    keys = jax.random.split(key, 2)
    levels = functools.partial(sample_noise_levels, n=4, low=1.0, high=2.0, log_uniform=True)
    np.testing.assert_allclose(jax.vmap(levels)(keys)[1], levels(keys[1]), rtol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda key, x: gaussian_noise(key, x, -0.1), "sigma: expected a finite value >= 0"),
        (lambda key, x: gaussian_noise(key, x, np.array([0.1, -0.1])), "sigma"),
        (lambda key, x: gaussian_noise(key, x, np.ones(3)), "sigma: per-image values"),
        (lambda key, x: gaussian_noise(key, x[0], np.ones(2)), "sigma: per-image values"),
        (lambda key, x: gaussian_noise(key, x, np.ones((2, 1))), "sigma: expected"),
        (lambda key, x: poisson_noise(key, x, peak=0.0), "peak: expected a finite value > 0"),
        (lambda key, x: poisson_noise(key, x, peak=-5.0), "peak"),
        (lambda key, x: poisson_gaussian_noise(key, x, peak=5.0, sigma=-1.0), "sigma"),
        (lambda key, x: gaussian_noise(key, x[0, 0], 0.1), "x: expected"),
        (lambda key, x: gaussian_noise(key, x * np.nan, 0.1), "x: expected finite"),
        (lambda key, x: sample_noise_levels(key, 3, low=-1.0, high=1.0), "low"),
        (lambda key, x: sample_noise_levels(key, 3, low=0.5, high=0.1), "high"),
        (lambda key, x: sample_noise_levels(key, 3, low=0.0, high=1.0, log_uniform=True),
         "low: expected a finite value > 0"),
    ],
)
def test_bad_levels_raise_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(jax.random.key(0), np.full((2, 4, 4, 3), 0.5, np.float32))


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_noise_estimate_of_a_blurred_photo_is_within_ten_percent(sigma):
    """A photograph, Gaussian-blurred (sigma 1.5), plus known noise: Donoho's estimate recovers it."""
    import scipy.ndimage
    import skimage.data

    photo = skimage.data.astronaut()[:256, :256] / 255.0
    blurred = scipy.ndimage.gaussian_filter(photo, (1.5, 1.5, 0))
    noisy = blurred + sigma * np.random.default_rng(0).standard_normal(blurred.shape)
    estimate = float(estimate_noise_sigma(jnp.asarray(noisy, jnp.float32)))
    assert abs(estimate - sigma) < 0.1 * sigma, estimate
    # A batch gives each image its own estimate; a noise-free image next to nothing.
    batch = jnp.asarray(np.stack([noisy, blurred]), jnp.float32)
    estimates = np.asarray(estimate_noise_sigma(batch))
    np.testing.assert_allclose(estimates[0], estimate, rtol=1e-6)
    assert estimates[1] < 0.1 * sigma


def test_noise_estimate_refuses_an_image_too_small():
    with pytest.raises(ValueError, match="at least 2x2"):
        estimate_noise_sigma(jnp.zeros((1, 5, 3)))
