import jax
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
import skimage.restoration

from jdeblur.restore.tv import divergence, gradient, tv_deconvolution
from tests.restore.references import gaussian_kernel, psnr


def test_divergence_is_the_negative_adjoint_of_gradient(x64, rng):
    x = rng.standard_normal((2, 7, 9, 3))
    p_rows, p_cols = rng.standard_normal((2, 2, 7, 9, 3))
    g_rows, g_cols = gradient(x)
    np.testing.assert_allclose(g_rows[:, :-1], np.diff(x, axis=1))
    np.testing.assert_array_equal(g_cols[:, :, -1], 0)
    lhs = np.vdot(g_rows, p_rows) + np.vdot(g_cols, p_cols)
    np.testing.assert_allclose(lhs, -np.vdot(x, divergence(p_rows, p_cols)), rtol=1e-12)


def test_identity_kernel_equals_skimage_tv_denoising(x64, rng):
    # With k = [[1]] the problem is TV denoising, which skimage solves with Chambolle's
    # projection algorithm: 1/2 |x - y|^2 + weight TV(x), same differences, per channel.
    image = rng.random((24, 20, 2))
    expected = skimage.restoration.denoise_tv_chambolle(
        image, weight=0.1, eps=1e-12, max_num_iter=20000, channel_axis=-1
    )
    got = tv_deconvolution(image, np.ones((1, 1)), lam=0.1, num_iter=3000, bounds=None)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def _dense_operators(kernel, shape):
    """Reflect-boundary blur and gradient matrices built from scipy.ndimage on basis images."""
    basis = np.eye(np.prod(shape)).reshape(-1, *shape)
    blur = np.stack([scipy.ndimage.convolve(e, kernel, mode="reflect").ravel() for e in basis], axis=1)
    rows = np.stack([np.diff(e, axis=0, append=e[-1:]).ravel() for e in basis], axis=1)
    cols = np.stack([np.diff(e, axis=1, append=e[:, -1:]).ravel() for e in basis], axis=1)
    return blur, rows, cols


def test_reaches_the_minimum_found_by_lbfgs(x64, rng):
    # Reference: L-BFGS-B (box [0, 1]) on the TV smoothed as sqrt(|grad x|^2 + d^2), with dense
    # operators from scipy. Smoothing raises the objective by at most lam * pixels * d, so
    # f(reference) - lam * pixels * d <= min f <= f(ours), and ours must also be below f(reference).
    shape, lam, smoothing = (14, 12), 0.01, 1e-3
    kernel = gaussian_kernel(5, 1.0)
    blur, rows, cols = _dense_operators(kernel, shape)
    sharp = rng.random(shape) > 0.5  # piecewise constant: TV's favourite
    y = blur @ sharp.ravel() + 0.01 * rng.standard_normal(blur.shape[0])

    def objective(x, smoothing=0.0):
        tv = np.sqrt((rows @ x) ** 2 + (cols @ x) ** 2 + smoothing**2).sum()
        return 0.5 * np.sum((blur @ x - y) ** 2) + lam * tv

    def objective_and_gradient(x):
        g_rows, g_cols = rows @ x, cols @ x
        norm = np.sqrt(g_rows**2 + g_cols**2 + smoothing**2)
        grad = blur.T @ (blur @ x - y) + lam * (rows.T @ (g_rows / norm) + cols.T @ (g_cols / norm))
        return objective(x, smoothing), grad

    reference = scipy.optimize.minimize(
        objective_and_gradient, y, jac=True, method="L-BFGS-B", bounds=[(0, 1)] * y.size,
        options=dict(maxiter=5000, ftol=1e-15, gtol=1e-10),
    ).x
    got = np.ravel(tv_deconvolution(y.reshape(*shape, 1), kernel, lam=lam, num_iter=500, boundary="reflect"))
    assert np.all((got >= 0) & (got <= 1))
    assert objective(reference) - lam * y.size * smoothing <= objective(got) <= objective(reference)
    np.testing.assert_allclose(got, reference, atol=1e-2)  # the smoothing moves it by ~5e-3


def test_raises_psnr_with_reflect_and_valid_boundaries(blurred_camera):
    sharp, blurred, kernel = blurred_camera
    before = psnr(blurred, sharp)
    for boundary in ("reflect", "valid"):
        restored = tv_deconvolution(blurred, kernel, lam=0.002, num_iter=150, boundary=boundary)
        assert restored.shape == blurred.shape
        # Measured: 25.8 dB blurred, 28.6 dB restored with either boundary.
        assert psnr(restored, sharp) > before + 2.0


def test_jit_and_vmap_over_per_image_kernels(rng):
    images = rng.random((3, 16, 20, 2)).astype(np.float32)
    kernels = rng.random((3, 5, 5)).astype(np.float32)
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    call = lambda y, k: tv_deconvolution(y, k, lam=0.01, num_iter=20)  # noqa: E731
    # vmap sees one kernel per call, so its default steps come from that kernel's norm rather
    # than the batch's largest; with unit-sum kernels they agree.
    np.testing.assert_allclose(jax.jit(jax.vmap(call))(images, kernels), call(images, kernels), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lam=-0.1), "lam"),
        (dict(num_iter=0), "num_iter"),
        (dict(tau=-1.0), "tau"),
        (dict(sigma=0.0), "sigma"),
        (dict(bounds=(1.0, 0.0)), "bounds"),
        (dict(boundary="mirror"), "boundary"),
        (dict(kernel=np.ones((9, 9)) / 81), "kernel"),
        (dict(image=np.full((8, 8), 0.5)), "image"),
        (dict(kernel=np.full((3, 3), np.inf)), "kernel"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, name):
    args = dict(image=np.full((8, 8, 1), 0.5), kernel=np.ones((3, 3)) / 9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        tv_deconvolution(args.pop("image"), args.pop("kernel"), **args)
