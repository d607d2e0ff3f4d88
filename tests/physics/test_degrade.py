"""The forward model: y is scipy's blur of the returned kernels, keys, noise levels, gradients.

Every distinct config and shape compiles the kernel sampler and the noise anew (seconds each on
the CPU), so the tests share a few of them.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from jdeblur.physics import kernel_mixture
from jdeblur.physics.degrade import (
    Degradation,
    default_degrade_config,
    degrade,
    degrade_with_info,
    sharp_target,
)
from jdeblur.physics.operators import blur_adjoint

_SHAPE = (4, 40, 42, 3)
_SIZE = 5


def small_config(*, kind="none", boundary="valid", **noise):
    """The two kernel families quickest to compile, size 5."""
    cfg = default_degrade_config()
    cfg.blur.size = _SIZE
    cfg.blur.families = ("disk", "box")
    cfg.blur.weights = (1.0, 1.0)
    cfg.blur.disk.radius = (1.0, 2.5)
    cfg.blur.box.width = cfg.blur.box.height = (1.0, 5.0)
    cfg.boundary = boundary
    cfg.noise.kind = kind
    cfg.noise.update(noise)
    return cfg


def gaussian_config():
    """The noisy config most tests share (one compilation)."""
    return small_config(kind="gaussian", sigma=(0.01, 0.05), sigma_log_uniform=True)


def _key(rng):
    return jax.random.key(int(rng.integers(2**31)))


def _scipy_blur(x, kernels, boundary):
    """float64 reference, per image and channel."""
    out = []
    for image, kernel in zip(np.asarray(x, np.float64), np.asarray(kernels, np.float64)):
        channels = [
            scipy.signal.convolve(channel, kernel, mode="valid") if boundary == "valid"
            else scipy.ndimage.convolve(channel, kernel, mode="reflect")
            for channel in np.moveaxis(image, -1, 0)
        ]
        out.append(np.stack(channels, -1))
    return np.stack(out)


@pytest.mark.parametrize("boundary", ["valid", "reflect"])
def test_y_is_the_scipy_blur_of_the_returned_kernels(boundary, rng):
    x = rng.random(_SHAPE).astype(np.float32)
    cfg = small_config(boundary=boundary)
    d = degrade_with_info(jax.random.key(int(rng.integers(2**31))), x, cfg)
    assert isinstance(d, Degradation)
    expected = _scipy_blur(x, d.kernel, boundary)
    assert d.y.shape == expected.shape == sharp_target(x, cfg).shape and d.y.dtype == jnp.float32
    np.testing.assert_allclose(d.y, expected, atol=2e-6)
    assert d.kernel.shape == (4, _SIZE, _SIZE) and d.kernel.dtype == jnp.float32
    np.testing.assert_allclose(d.kernel.sum((1, 2)), 1, atol=1e-5)
    np.testing.assert_array_equal(d.noise_sigma, np.zeros(4))
    assert d.family.shape == (4,) and d.family.dtype == jnp.int32
    assert {kernel_mixture.FAMILIES[f] for f in np.asarray(d.family)} <= set(cfg.blur.families)
    if boundary == "valid":
        assert d.y.shape == (4, 40 - _SIZE + 1, 42 - _SIZE + 1, 3)


def test_one_key_one_degradation_and_named_streams(rng):
    x = rng.random(_SHAPE).astype(np.float32)
    key, other = jax.random.split(_key(rng))
    cfg = gaussian_config()
    y, kernel, sigma = degrade(key, x, cfg)
    for again, first in zip(degrade(key, x, cfg), (y, kernel, sigma)):
        np.testing.assert_array_equal(again, first)
    y_other, kernel_other, sigma_other = degrade(other, x, cfg)
    assert not np.allclose(kernel_other, kernel)
    assert not np.allclose(sigma_other, sigma) and not np.allclose(y_other, y)
    # The kernel stream does not depend on the noise: with no noise, the same kernels.
    np.testing.assert_array_equal(degrade_with_info(key, x, small_config()).kernel, kernel)
    # And the images of a batch get independent draws.
    assert len({float(s) for s in np.asarray(sigma)}) == 4


def test_gaussian_noise_level_is_recovered_and_log_uniform(rng):
    x = np.full(_SHAPE, 0.5, np.float32)
    y, _, sigma = degrade(_key(rng), x, gaussian_config())
    sigma = np.asarray(sigma)
    assert sigma.shape == (4,) and np.all((0.01 <= sigma) & (sigma <= 0.05))
    # The blur of a constant image is that constant, so y - 0.5 is the noise alone.
    residual = (np.asarray(y, np.float64) - 0.5).reshape(4, -1)
    np.testing.assert_allclose(residual.std(1), sigma, rtol=0.06)
    assert np.all(np.abs(residual.mean(1)) <= 5 * sigma / np.sqrt(residual.shape[1]))


def poisson_gaussian_config():
    return small_config(kind="poisson_gaussian", sigma=(0.0, 0.03), peak=(20.0, 200.0))


def test_poisson_gaussian_effective_sigma_is_the_noise_at_mid_grey(rng):
    x = np.full(_SHAPE, 0.5, np.float32)
    y, _, sigma = degrade(_key(rng), x, poisson_gaussian_config())
    residual = (np.asarray(y, np.float64) - 0.5).reshape(4, -1)
    np.testing.assert_allclose(residual.std(1), sigma, rtol=0.06)
    # At least sqrt(0.5 / 200), at most sqrt(0.5 / 20 + 0.03 ** 2).
    assert np.all((np.sqrt(0.5 / 200) <= sigma) & (sigma <= np.sqrt(0.5 / 20 + 0.03**2)))


def test_quantized_y_is_8bit_and_its_gradient_is_the_adjoint_blur(rng):
    # No pixel is clipped and rounding passes the gradient through, so d<y, w>/dx = H^T w.
    # (The noise's own gradient is tested with the noise.)
    x = rng.uniform(0.3, 0.7, _SHAPE).astype(np.float32)
    key = _key(rng)
    cfg = small_config(quantize=True)
    weights = rng.random((4, 36, 38, 3)).astype(np.float32)

    def weighted_sum(x):
        y, kernel, _ = degrade(key, x, cfg)
        return jnp.vdot(y, weights), (y, kernel)

    (_, (y, kernel)), gradient = jax.value_and_grad(weighted_sum, has_aux=True)(x)
    levels = np.asarray(y) * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    np.testing.assert_allclose(gradient, blur_adjoint(weights, kernel, boundary="valid"), atol=1e-5)


def test_jit_with_a_frozen_config_and_vmap(rng):
    # The eval set jits with a FrozenConfigDict as a static argument. vmap over a stack of
    # batches, so that each slice reuses the call compiled by the scipy test above. (Noise is
    # vmapped in the noise tests; a vmapped Poisson sampler takes long to compile.)
    xs = rng.random((2,) + _SHAPE).astype(np.float32)
    keys = jax.random.split(_key(rng), 2)
    cfg = small_config()
    frozen = ml_collections.FrozenConfigDict(cfg.to_dict())
    mapped = jax.jit(jax.vmap(degrade_with_info, in_axes=(0, 0, None)), static_argnums=2)(
        keys, xs, frozen
    )
    for i in range(2):
        single = degrade_with_info(keys[i], xs[i], cfg)
        for mapped_field, field in zip(mapped, single):
            np.testing.assert_allclose(mapped_field[i], field, atol=1e-6)


def test_default_config_is_valid_and_documented_fields_exist():
    cfg = default_degrade_config()
    assert cfg.boundary == "valid" and cfg.noise.kind == "gaussian" and cfg.clip
    assert cfg.blur.size == kernel_mixture.default_blur_config().size
    assert cfg.noise.sigma[0] <= cfg.noise.sigma[1] and 0 < cfg.noise.peak[0] <= cfg.noise.peak[1]


@pytest.mark.parametrize(
    "change, shape, match",
    [
        ({}, (24, 26, 3), "x: expected"),
        ({}, (2, 4, 26, 3), "x: a 'valid' degradation needs images at least"),
        ({"noise.kind": "speckle"}, _SHAPE, "config.degrade.noise.kind: expected one of"),
        ({"boundary": "same"}, _SHAPE, "config.degrade.boundary: expected one of"),
        ({"noise.kind": "gaussian", "noise.sigma": (-0.1, 0.1)}, _SHAPE, "config.degrade.noise.sigma"),
        ({"noise.kind": "gaussian", "noise.sigma": (0.2, 0.1)}, _SHAPE, "config.degrade.noise.sigma"),
        ({"noise.kind": "gaussian", "noise.sigma": (0.0, 0.1), "noise.sigma_log_uniform": True},
         _SHAPE, "config.degrade.noise.sigma"),
        ({"noise.kind": "poisson", "noise.peak": (0.0, 10.0)}, _SHAPE, "config.degrade.noise.peak"),
        ({"noise.kind": "poisson_gaussian", "noise.peak": (10.0,)}, _SHAPE, "config.degrade.noise.peak"),
    ],
)
def test_bad_config_or_input_raises_naming_it(change, shape, match):
    cfg = small_config()
    for field, value in change.items():
        parent, name = field.rsplit(".", 1) if "." in field else (None, field)
        (cfg[parent] if parent else cfg)[name] = value
    with pytest.raises(ValueError, match=match):
        degrade(jax.random.key(0), np.zeros(shape, np.float32), cfg)
