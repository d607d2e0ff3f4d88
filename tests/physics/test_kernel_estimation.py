"""Kernel estimation: the least-squares fit recovers a known kernel; projected kernels are valid."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jdeblur.physics.kernel_estimation import centre_kernel, least_squares_kernel, project_kernel
from jdeblur.physics.kernels import kernel_centroid, linear_motion_kernel
from jdeblur.physics.operators import blur, crop_valid
from jdeblur.physics.trajectories import camera_shake_kernel


@pytest.mark.parametrize("family", ["linear_motion", "camera_shake"])
def test_fit_against_the_true_sharp_image_recovers_the_kernel(family):
    """A 'valid' blur of a photo (the frame's border mixes in unseen scene) with 1% noise."""
    if family == "linear_motion":
        kernel = linear_motion_kernel(15, length=11.0, angle=30.0)
    else:
        kernel = camera_shake_kernel(jax.random.key(3), 15, max_length=12.0, canvas=None)
    photo = jnp.asarray(skimage.data.astronaut()[:200, :200] / 255.0, jnp.float32)[None]
    y = blur(photo, kernel, boundary="valid") + 0.01 * jax.random.normal(jax.random.key(0), (1, 186, 186, 3))
    estimate = project_kernel(least_squares_kernel(y, crop_valid(photo, 15), 15))[0]
    # L1 distance of kernels summing to 1 is at most 2; a 15-px line moved by one pixel is ~1.
    assert float(jnp.sum(jnp.abs(estimate - kernel))) < 0.2


def test_projected_kernels_are_valid_kernels(rng):
    raw = jnp.asarray(rng.standard_normal((4, 9, 9)), jnp.float32)
    raw = raw.at[3].set(-jnp.abs(raw[3]))  # nothing positive: falls back to the identity blur
    kernels = project_kernel(raw)
    assert kernels.shape == (4, 9, 9) and kernels.dtype == jnp.float32
    assert float(jnp.min(kernels)) >= 0
    np.testing.assert_allclose(jnp.sum(kernels, axis=(1, 2)), 1.0, rtol=1e-5)
    # Noise fills the whole window, so some mass leaves it when shifted: centred to 0.1 px.
    np.testing.assert_allclose(kernel_centroid(kernels), 0.0, atol=0.1)
    np.testing.assert_allclose(kernels[3], np.eye(1, 81, 40).reshape(9, 9), atol=1e-7)


def test_centring_moves_the_centre_of_mass_exactly_when_nothing_leaves_the_window():
    kernel = np.zeros((7, 7), np.float32)
    kernel[1, 2], kernel[2, 4] = 0.25, 0.75  # centre of mass (x, y) = (0.5, -1.25) from the centre
    centred = centre_kernel(jnp.asarray(kernel))
    np.testing.assert_allclose(kernel_centroid(centred), 0.0, atol=1e-6)
    np.testing.assert_allclose(jnp.sum(centred), 1.0, rtol=1e-6)


def test_estimation_is_differentiable_and_refuses_bad_shapes(rng):
    y = jnp.asarray(rng.random((1, 16, 16, 3)), jnp.float32)
    sharp = jnp.asarray(rng.random((1, 16, 16, 3)), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(project_kernel(least_squares_kernel(y, x, 5)) ** 2))(sharp)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.max(jnp.abs(grad))) > 0
    with pytest.raises(ValueError, match="size"):
        least_squares_kernel(y, y, 17)
    with pytest.raises(ValueError, match="sharp"):
        least_squares_kernel(y, y[:, :8], 5)
