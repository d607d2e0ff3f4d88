import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.restoration
from skimage.restoration import uft

from jdeblur.restore.fourier import (
    LAPLACIAN,
    apply_edge_taper,
    edge_taper_weight,
    inverse_filter,
    psf2otf,
    wiener,
)
from tests.restore.references import psnr


def _random_kernels(rng, shape):
    k = rng.random(shape)
    return k / k.sum(axis=(-2, -1), keepdims=True)


def _skimage_wiener_per_channel(images, kernels, balance, **kw):
    """skimage on each (image, channel) of an NHWC batch with per-image kernels."""
    out = np.empty_like(images)
    for b, (image, kernel) in enumerate(zip(images, kernels)):
        for c in range(image.shape[-1]):
            out[b, ..., c] = skimage.restoration.wiener(image[..., c], kernel, balance, **kw)
    return out


@pytest.mark.parametrize("kernel_shape", [(5, 7), (4, 6)])
def test_psf2otf_equals_skimage_ir2tf(x64, rng, kernel_shape):
    kernels = _random_kernels(rng, (2,) + kernel_shape)
    got = np.asarray(psf2otf(jnp.asarray(kernels), (17, 20)))
    for kernel, otf in zip(kernels, got):
        np.testing.assert_allclose(otf, uft.ir2tf(kernel, (17, 20)), atol=1e-12)


def test_wiener_equals_skimage_float64(x64, rng):
    # RGB batch with per-image kernels, odd and non-square image size, both clip settings.
    images = rng.random((2, 19, 24, 3))
    kernels = _random_kernels(rng, (2, 5, 3))
    for clip in (True, False):
        got = wiener(images, kernels, 0.003, clip=clip)
        assert got.dtype == jnp.float64
        expected = _skimage_wiener_per_channel(images, kernels, 0.003, clip=clip)
        np.testing.assert_allclose(got, expected, atol=1e-10)
    assert np.abs(np.asarray(got)).max() > 1  # the clip=True case above did clip something
    # Grayscale HWC with one kernel and a user regulariser (centro-symmetric: see fourier.py).
    image, kernel, reg = rng.random((16, 16, 1)), _random_kernels(rng, (7, 7)), np.array([[-1.0, 2, -1]])
    expected = skimage.restoration.wiener(image[..., 0], kernel, 0.1, reg=reg)
    np.testing.assert_allclose(wiener(image, kernel, 0.1, reg=reg)[..., 0], expected, atol=1e-10)


def test_wiener_float32_close_to_skimage_float64(rng):
    # float32 FFTs round to ~1e-7 * log2(n) relative in the spectrum and the filter's gain is at
    # most ~1 / (2 sqrt(balance) |L|) ~ 3 here: ours and skimage's own float32 path both land
    # ~1e-6 from the float64 result (measured over seeds); 1e-5 leaves a margin of about 10.
    images = rng.random((2, 96, 96, 3)).astype(np.float32)
    kernels = _random_kernels(rng, (2, 9, 9)).astype(np.float32)
    got = wiener(images, kernels, 0.01)
    assert got.dtype == jnp.float32
    expected = _skimage_wiener_per_channel(images.astype(np.float64), kernels.astype(np.float64), 0.01)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("regularizer", ["identity", "laplacian"])
def test_inverse_filter_solves_tikhonov_normal_equations(x64, rng, regularizer):
    # Independent of any FFT: dense circulant matrices from scipy.ndimage.convolve(mode='wrap').
    height, width = 9, 8
    kernel = _random_kernels(rng, (3, 5))
    image = rng.random((height, width))
    basis = np.eye(height * width).reshape(-1, height, width)
    blur = np.stack([scipy.ndimage.convolve(e, kernel, mode="wrap").ravel() for e in basis], axis=1)
    reg_kernel = np.ones((1, 1)) if regularizer == "identity" else LAPLACIAN
    reg = np.stack([scipy.ndimage.convolve(e, reg_kernel, mode="wrap").ravel() for e in basis], axis=1)
    normal = blur.T @ blur + 0.02 * reg.T @ reg
    expected = np.linalg.solve(normal, blur.T @ image.ravel()).reshape(height, width)
    got = inverse_filter(image[..., None], kernel, eps=0.02, regularizer=regularizer)
    np.testing.assert_allclose(got[..., 0], expected, atol=1e-10)


def test_fourier_filters_raise_psnr(blurred_camera):
    sharp, blurred, kernel = blurred_camera
    before = psnr(blurred, sharp)  # 25.8 dB; measured after: 28.3 dB and 28.7 dB
    for restored in (
        wiener(blurred, kernel, 0.01, edge_taper=True),
        inverse_filter(blurred, kernel, eps=3e-3, edge_taper=True),
    ):
        assert psnr(restored, sharp) > before + 1.5


def test_edge_taper_reduces_border_ringing(blurred_camera):
    sharp, blurred, kernel = blurred_camera
    band = np.ones(sharp.shape, bool)
    band[8:-8, 8:-8] = False  # the 8-pixel frame where the circular wrap rings
    plain = wiener(blurred, kernel, 0.01)
    tapered = wiener(blurred, kernel, 0.01, edge_taper=True)
    # Measured: plain 18 dB, tapered 30 dB, blurred input 27 dB in the band.
    assert psnr(tapered[band], sharp[band]) > psnr(plain[band], sharp[band]) + 8.0
    assert psnr(tapered[band], sharp[band]) > psnr(blurred[band], sharp[band]) + 1.0


def test_edge_taper_weight_is_zero_on_border_and_one_inside(rng):
    kernels = _random_kernels(rng, (2, 5, 7))
    weight = np.asarray(edge_taper_weight(jnp.asarray(kernels), (20, 24)))
    assert weight.shape == (2, 20, 24)
    assert np.all((weight >= -1e-6) & (weight <= 1 + 1e-6))
    for edge in (weight[:, 0], weight[:, -1], weight[:, :, 0], weight[:, :, -1]):
        np.testing.assert_allclose(edge, 0, atol=1e-6)
    # Beyond the kernel's reach of every border the image is kept as it is.
    np.testing.assert_allclose(weight[:, 5:-5, 7:-7], 1, atol=1e-6)
    image = rng.random((2, 20, 24, 3)).astype(np.float32)
    tapered = apply_edge_taper(image, kernels)
    np.testing.assert_allclose(tapered[:, 5:-5, 7:-7], image[:, 5:-5, 7:-7], atol=1e-6)


def test_wiener_jit_and_vmap_over_per_image_kernels(rng):
    images = rng.random((3, 16, 20, 2)).astype(np.float32)
    kernels = _random_kernels(rng, (3, 5, 5)).astype(np.float32)
    call = lambda y, k, balance: wiener(y, k, balance, edge_taper=True)  # noqa: E731
    balances = np.array([0.05, 0.05, 0.5], np.float32)  # traced under vmap: one per image
    mapped = jax.jit(jax.vmap(call))(images, kernels, balances)
    for image, kernel, balance, got in zip(images, kernels, balances, mapped):
        np.testing.assert_allclose(got, call(image, kernel, balance), atol=1e-6)
    assert not np.allclose(mapped[2], call(images[2], kernels[2], balances[0]), atol=1e-3)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda y, k: wiener(y, k, -0.1), "balance"),
        (lambda y, k: wiener(y, k, 0.0), "balance"),
        (lambda y, k: inverse_filter(y, k, eps=-1.0), "eps"),
        (lambda y, k: inverse_filter(y, k, regularizer="tv"), "regularizer"),
        (lambda y, k: wiener(y, np.ones((17, 3)) / 51, 0.1), "kernel"),
        (lambda y, k: wiener(y, k, 0.1, reg=np.ones((20, 20))), "reg"),
        (lambda y, k: wiener(y.at[0, 0, 0].set(jnp.nan), k, 0.1), "image"),
        (lambda y, k: wiener(y, k.at[0, 0].set(jnp.inf), 0.1), "kernel"),
        (lambda y, k: wiener(y[..., 0], k, 0.1), "image"),
        (lambda y, k: wiener(y, jnp.stack([k, k]), 0.1), "kernel"),
        (lambda y, k: apply_edge_taper(y, np.ones((16, 5)) / 80), "kernel"),
        (lambda y, k: psf2otf(k, (2, 2)), "kernel"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, name):
    image, kernel = jnp.full((16, 16, 1), 0.5), jnp.full((3, 3), 1 / 9)
    with pytest.raises(ValueError, match=name):
        call(image, kernel)
