"""The HQS data step against a dense solve built from scipy's convolutions, in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import skimage.data

from jdeblur.physics.kernels import linear_motion_kernel
from jdeblur.physics.operators import blur
from jdeblur.physics.proximal import data_proximal

_NDIMAGE_MODES = {"circular": "wrap", "reflect": "reflect", "zero": "constant"}


def _dense_blur(kernel, grid, boundary):
    """The blur as a dense matrix (outputs x inputs) on one channel, column by column from scipy."""
    columns = []
    for index in range(grid[0] * grid[1]):
        basis = np.zeros(grid)
        basis.flat[index] = 1.0
        if boundary == "valid":
            out = scipy.signal.convolve(basis, kernel, mode="valid")
        else:
            out = scipy.ndimage.convolve(basis, kernel, mode=_NDIMAGE_MODES[boundary])
        columns.append(out.ravel())
    return np.stack(columns, axis=1), out.shape


def _dense_solve(y, kernel, z, mu, boundary):
    """x = argmin ||M H x - y||^2 + mu ||x - z||^2 per channel, M observing the top-left of H x."""
    matrix, out_shape = _dense_blur(kernel, z.shape[:2], boundary)
    observed = np.zeros(out_shape, bool)
    observed[: y.shape[0], : y.shape[1]] = True
    masked = matrix[observed.ravel()]
    normal = masked.T @ masked + mu * np.eye(matrix.shape[1])
    x = [np.linalg.solve(normal, masked.T @ y[..., c].ravel() + mu * z[..., c].ravel()) for c in range(y.shape[-1])]
    return np.stack(x, axis=-1).reshape(z.shape)


@pytest.mark.parametrize("boundary, kernel_shape, extra", [
    ("circular", (3, 4), 0), ("reflect", (3, 3), 0), ("zero", (4, 3), 0),
    ("valid", (3, 3), 0), ("valid", (4, 5), 2),  # a grid larger than y needs: pixels only z speaks for
])
def test_data_step_equals_a_dense_solve(x64, rng, boundary, kernel_shape, extra):
    height, width, channels = 6, 7, 2
    kernels = rng.random((2,) + kernel_shape)
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    margin = (kernel_shape[0] - 1, kernel_shape[1] - 1) if boundary == "valid" else (0, 0)
    grid = (height + margin[0] + extra, width + margin[1] + extra)
    y = rng.random((2, height, width, channels))
    z = rng.random((2, *grid, channels))
    mu = np.array([0.05, 0.3])
    # Circular is closed form (iterations unused); the others converge within the system's size.
    iterations = 60
    got = np.asarray(data_proximal(y, kernels, z, mu, boundary=boundary, iterations=iterations))
    want = np.stack([_dense_solve(y[i], kernels[i], z[i], mu[i], boundary) for i in range(2)])
    np.testing.assert_allclose(got, want, atol=1e-8)


def test_a_few_iterations_solve_a_photo_crop_with_unknown_borders():
    """A 'valid' observation of a photo crop: 4 CG steps get close to the exact (dense) solution, 1 less so."""
    sharp = np.asarray(skimage.data.astronaut()[120:164, 170:214] / 255.0, np.float32)
    kernel = np.asarray(linear_motion_kernel(11, length=9.0, angle=30.0))
    y = np.asarray(blur(jnp.asarray(sharp[None]), jnp.asarray(kernel), boundary="valid"))[0]
    z = sharp + 0.05 * np.asarray(jax.random.normal(jax.random.key(1), sharp.shape))  # a prior's fair estimate
    exact = _dense_solve(y.astype(np.float64), kernel.astype(np.float64), z.astype(np.float64), 0.01, "valid")
    rms = [float(np.sqrt(np.mean((np.asarray(data_proximal(y[None], kernel, z[None], 0.01, iterations=n))[0]
                                  - exact) ** 2))) for n in (1, 4)]
    assert rms[1] < rms[0] / 2 and rms[1] < 0.01, rms


def test_shared_kernel_scalar_mu_jit_vmap_and_gradient(rng):
    y = jnp.asarray(rng.random((2, 8, 9, 3)), jnp.float32)
    z = jnp.asarray(rng.random((2, 10, 11, 3)), jnp.float32)
    kernel = jnp.full((3, 3), 1 / 9)
    step = jax.jit(lambda y, z, mu: data_proximal(y, kernel, z, mu, iterations=3))
    x = step(y, z, 0.1)
    assert x.shape == z.shape and x.dtype == jnp.float32
    per_image = jax.vmap(lambda a, b: step(a[None], b[None], 0.1)[0])(y, z)
    np.testing.assert_allclose(per_image, x, atol=1e-5)
    grad_mu = jax.grad(lambda mu: jnp.sum(step(y, z, mu) ** 2))(0.1)
    eps = 1e-3
    numeric = (jnp.sum(step(y, z, 0.1 + eps) ** 2) - jnp.sum(step(y, z, 0.1 - eps) ** 2)) / (2 * eps)
    np.testing.assert_allclose(grad_mu, numeric, rtol=2e-2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(boundary="wrap"), "boundary"),
    (dict(iterations=0), "iterations"),
    (dict(z_shape=(1, 9, 9, 3)), "z: for boundary 'valid'"),
    (dict(boundary="reflect", z_shape=(1, 10, 10, 3)), "expected a grid of (8, 8)"),
])
def test_bad_arguments_name_what_is_wrong(kwargs, message):
    z_shape = kwargs.pop("z_shape", (1, 10, 10, 3))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data_proximal(jnp.zeros((1, 8, 8, 3)), jnp.ones((3, 3)) / 9, jnp.zeros(z_shape), 0.1, **kwargs)
