"""Blind kernel search: the L0 latent restores a cartoon, the search finds kernels in photographs,
and its output is a valid kernel whatever the image."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jdeblur.physics.blind_kernel import estimate_kernel, l0_latent, pyramid_sizes
from jdeblur.physics.kernels import disk_kernel, gaussian_kernel, kernel_centroid, linear_motion_kernel
from jdeblur.physics.operators import blur, psf2otf
from jdeblur.physics.trajectories import camera_shake_kernel
from tests.models.model_fixtures import quick_jit

_search = jax.jit(estimate_kernel, static_argnames=("size", "rounds"))
_quick_search = quick_jit(estimate_kernel, static_argnames=("size", "rounds"))


def test_pyramid_sizes_grow_by_about_sqrt2_through_odd_sizes_to_the_kernel():
    assert pyramid_sizes(19) == [3, 5, 7, 9, 13, 19]
    assert pyramid_sizes(3) == [3] and pyramid_sizes(5) == [3, 5]
    for size in range(3, 40, 2):
        sizes = pyramid_sizes(size)
        assert sizes[-1] == size and all(s % 2 for s in sizes) and sizes == sorted(set(sizes))


def test_l0_latent_given_the_true_kernel_restores_a_piecewise_constant_image(rng):
    """A cartoon (random rectangles), blurred circularly (scipy's convention via the OTF), noise-free."""
    image = np.full((64, 64), 0.2, np.float32)
    for _ in range(6):
        top, left = rng.integers(4, 40, size=2)
        image[top:top + rng.integers(8, 20), left:left + rng.integers(8, 20)] = rng.uniform(0.3, 1.0)
    kernel = camera_shake_kernel(jax.random.key(int(rng.integers(1 << 30))), 9, max_length=7.0, canvas=None)
    blurred = jnp.fft.irfft2(psf2otf(kernel, image.shape) * jnp.fft.rfft2(image), s=image.shape)
    latent = quick_jit(l0_latent)(blurred, kernel, 1e-3)
    assert float(jnp.mean(jnp.abs(latent - image))) < 0.25 * float(jnp.mean(jnp.abs(blurred - image)))


@pytest.mark.parametrize("family", ["gaussian", "disk", "camera_shake", "linear_motion"])
def test_search_finds_the_kernel_of_a_blurred_photograph(family):
    """A 'reflect' blur of a photo crop with 1% noise: closer to the truth than the identity blur is.

    The oblique line is the case a kernel fitted on the mirrored canvas misses (a mirrored copy is
    blurred by the mirrored line): its L1 error was 1.73 (the identity's: 1.82), 0.69 fitted on
    the crop alone. The line's error is mostly width (the direction and length are right).
    """
    bound = 0.6
    if family == "gaussian":
        kernel = gaussian_kernel(15, sigma=1.8)
    elif family == "disk":
        kernel = disk_kernel(15, radius=3.5)
    elif family == "camera_shake":
        kernel = camera_shake_kernel(jax.random.key(5), 15, max_length=11.0, canvas=None)
    else:
        kernel, bound = linear_motion_kernel(15, length=13.0, angle=30.0), 0.9
    photo = jnp.asarray(skimage.data.astronaut()[100:292, 150:342] / 255.0, jnp.float32)[None]
    y = blur(photo, kernel, boundary="reflect") + 0.01 * jax.random.normal(jax.random.key(1), photo.shape)
    found = _search(y, size=15)[0]
    identity = jnp.zeros_like(kernel).at[7, 7].set(1.0)
    error, baseline = float(jnp.sum(jnp.abs(found - kernel))), float(jnp.sum(jnp.abs(identity - kernel)))
    assert error < bound and error < 0.5 * baseline, (error, baseline)


def test_estimates_are_valid_kernels_one_per_image(rng):
    images = jnp.asarray(rng.random((2, 48, 40, 3)), jnp.float32)  # noise: no blur to find
    images = images.at[1].set(blur(images[1:], gaussian_kernel(7, sigma=1.5))[0])
    kernels = _quick_search(images, size=7, rounds=2)
    assert kernels.shape == (2, 7, 7) and kernels.dtype == jnp.float32
    assert float(jnp.min(kernels)) >= 0
    np.testing.assert_allclose(jnp.sum(kernels, axis=(1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(kernel_centroid(kernels), 0.0, atol=0.1)
    # Each image's kernel is its own: the same whatever the other images (here, in the other order).
    np.testing.assert_allclose(kernels[::-1], _quick_search(images[::-1], size=7, rounds=2), atol=1e-5)


def test_bad_arguments_are_refused(rng):
    y = jnp.asarray(rng.random((1, 16, 16, 1)), jnp.float32)
    with pytest.raises(ValueError, match="size"):
        estimate_kernel(y, 17)
    with pytest.raises(ValueError, match="odd"):
        estimate_kernel(y, 6)
    with pytest.raises(ValueError, match="keep"):
        estimate_kernel(y, 5, keep=0.0)
    with pytest.raises(ValueError, match="blurred"):
        estimate_kernel(y[0], 5)
