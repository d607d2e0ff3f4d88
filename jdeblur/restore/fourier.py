"""Fourier-domain deconvolution: regularized inverse filter and Wiener, with optional edge taper.

Images are NHWC (or HWC) float32 in [0, 1]; a kernel is one (kh, kw) array for the whole batch
or (B, kh, kw) with one kernel per image, applied to every channel alike.

Both filters divide in the Fourier domain and so assume a circular blur: on a photo (which is not
periodic) the wrap-around discontinuity at the borders rings. ``edge_taper=True`` counters it in
two steps: the image is first extended by symmetric reflection (``scipy.ndimage``'s 'reflect') by
the kernel's size on each side, which keeps it continuous across its true borders; then the
extension's own borders are tapered the way MATLAB's ``edgetaper`` does (blended with the
circularly blurred copy, with a weight built from the kernel's autocorrelation, see
:func:`apply_edge_taper`), which makes it smooth across the wrap; the result is cropped back.
On a reflect-blurred 96x96 photo crop (Gaussian 9x9, sigma 1.6, noise 0.005, balance 0.01) this
lifts the PSNR of the 8-pixel border band from 18 dB (plain) or 23 dB (taper alone) to 30 dB,
above the blurred input's 27 dB, and of the whole image from 22 dB to 28 dB (input: 26 dB).

The Wiener filter follows ``skimage.restoration.wiener(image, psf, balance, reg=None,
is_real=True, clip=...)``: filter ``conj(H) / (|H|^2 + balance |R|^2)`` with ``R`` the transfer
function of ``reg`` (the 3x3 Laplacian by default), kernel centre at index ``(kh // 2, kw // 2)``
moved to the origin, and ``clip=True`` clipping to [-1, 1] as skimage does (not to [0, 1]).
skimage's unitary FFT scaling cancels between the forward and inverse transforms, so plain
``rfft2``/``irfft2`` give the same values. One deliberate difference: skimage keeps only the real
part of the regulariser's transfer function, which is only right for a centro-symmetric ``reg``
(such as the Laplacian); here ``|R|^2`` is used as the formula says.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.checks import check_choice, check_finite, check_positive, check_rank
from jdeblur.physics.operators import psf2otf
from jdeblur.restore.arguments import prepare_problem

# skimage.restoration.uft.laplacian(2, ...): the default Wiener regulariser.
LAPLACIAN = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
_IDENTITY = np.ones((1, 1))
_SPATIAL_AXES = (-3, -2)


@functools.partial(jax.jit, static_argnames="shape")
def edge_taper_weight(kernel, shape):
    """Weight of the original image in MATLAB-style edge tapering: 0 on the border, 1 inside.

    Per axis, the weight is one minus the kernel projection's circular autocorrelation over
    ``n - 1`` samples (normalised to peak 1, closed periodically so both border pixels get 0);
    the 2-D weight is the product of the two axes' weights. It falls off over about the kernel's
    extent, so the blend only touches the band the blur reaches across the border.

    Args:
      kernel: (..., kh, kw) kernel(s), smaller than ``shape`` on both axes.
      shape: (H, W), the image size.

    Returns:
      Array of shape (..., H, W).
    """

    def axis_weight(projection, n):
        power = jnp.abs(jnp.fft.rfft(projection, n=n - 1)) ** 2
        autocorrelation = jnp.fft.irfft(power, n=n - 1)
        autocorrelation = jnp.concatenate([autocorrelation, autocorrelation[..., :1]], axis=-1)
        return 1 - autocorrelation / jnp.max(autocorrelation, axis=-1, keepdims=True)

    rows = axis_weight(jnp.sum(kernel, axis=-1), shape[0])
    cols = axis_weight(jnp.sum(kernel, axis=-2), shape[1])
    return rows[..., :, None] * cols[..., None, :]


def apply_edge_taper(image, kernel):
    """Blends ``image`` with its circular blur by ``kernel`` near the borders (MATLAB ``edgetaper``).

    Args:
      image: (H, W, C) or (B, H, W, C) image.
      kernel: (kh, kw) or (B, kh, kw) kernel, smaller than the image on both axes.

    Returns:
      The tapered image, the shape of ``image``, in its float dtype (float32, or float64 for a float64
      image under x64; see ``jdeblur.restore.arguments``).
    """
    image, kernel = prepare_problem(image, kernel)
    # The autocorrelation runs over n - 1 samples: a kernel that long would be truncated.
    if kernel.shape[-2] >= image.shape[-3] or kernel.shape[-1] >= image.shape[-2]:
        raise ValueError(
            f"kernel: edge tapering needs a kernel smaller than the image on both axes, got "
            f"{kernel.shape[-2]}x{kernel.shape[-1]} for a {image.shape[-3]}x{image.shape[-2]} image"
        )
    return _edge_taper(image, kernel)


def wiener(image, kernel, balance, *, reg=None, clip=True, edge_taper=False):
    """Wiener-Hunt deconvolution, equal to ``skimage.restoration.wiener`` without edge taper.

    Args:
      image: (H, W, C) or (B, H, W, C) blurred image.
      kernel: (kh, kw) or per-image (B, kh, kw) blur kernel.
      balance: regularisation weight > 0 (larger: smoother, less noise amplification).
      reg: (rh, rw) impulse response of the regulariser; None for the 3x3 Laplacian.
      clip: clip the result to [-1, 1] (skimage's convention).
      edge_taper: extend and taper the borders first (see the module docstring) against ringing.

    Returns:
      The restored image, the shape of ``image``, in its float dtype (float32, or float64 for a float64
      image under x64, as scikit-image; see ``jdeblur.restore.arguments``).
    """
    image, kernel = prepare_problem(image, kernel)
    check_positive(balance, "balance")
    reg = LAPLACIAN if reg is None else reg
    check_rank(reg, "reg", (2,), "a 2-D impulse response (rh, rw)")
    check_finite(reg, "reg")
    if np.shape(reg)[0] > image.shape[-3] or np.shape(reg)[1] > image.shape[-2]:
        raise ValueError(
            f"reg: expected an impulse response no larger than the image "
            f"({image.shape[-3]}x{image.shape[-2]}), got shape {np.shape(reg)}"
        )
    reg = jnp.asarray(reg, image.dtype)
    balance = jnp.asarray(balance, image.dtype)
    return _wiener(image, kernel, balance, reg, clip=bool(clip), edge_taper=bool(edge_taper))


def inverse_filter(image, kernel, *, eps=1e-3, regularizer="identity", edge_taper=False):
    """Regularized (Tikhonov) inverse filter ``conj(H) / (|H|^2 + eps |R|^2)``, no clipping.

    Args:
      image: (H, W, C) or (B, H, W, C) blurred image.
      kernel: (kh, kw) or per-image (B, kh, kw) blur kernel.
      eps: regularisation weight > 0.
      regularizer: 'identity' (``R = 1``, plain Tikhonov) or 'laplacian' (penalises high
        frequencies; then equal to ``wiener(..., balance=eps, clip=False)``).
      edge_taper: extend and taper the borders first against ringing.

    Returns:
      The restored image, the shape of ``image``, in its float dtype (float32, or float64 for a float64
      image under x64, as scikit-image; see ``jdeblur.restore.arguments``).
    """
    check_choice(regularizer, "regularizer", ("identity", "laplacian"))
    check_positive(eps, "eps")
    reg = _IDENTITY if regularizer == "identity" else LAPLACIAN
    return wiener(image, kernel, eps, reg=reg, clip=False, edge_taper=edge_taper)


def _apply_transfer(transfer, spectrum, shape):
    return jnp.fft.irfft2(transfer * spectrum, s=shape, axes=_SPATIAL_AXES)


@jax.jit
def _edge_taper(image, kernel):
    shape = image.shape[-3:-1]
    otf = psf2otf(kernel, shape)[..., None]
    blurred = _apply_transfer(otf, jnp.fft.rfft2(image, axes=_SPATIAL_AXES), shape)
    weight = edge_taper_weight(kernel, shape)[..., None]
    return weight * image + (1 - weight) * blurred


@functools.partial(jax.jit, static_argnames=("clip", "edge_taper"))
def _wiener(image, kernel, balance, reg, *, clip, edge_taper):
    if edge_taper:
        kh, kw = kernel.shape[-2:]
        pad = [(0, 0)] * (image.ndim - 3) + [(kh, kh), (kw, kw), (0, 0)]
        extended = _edge_taper(jnp.pad(image, pad, mode="symmetric"), kernel)
        restored = _wiener(extended, kernel, balance, reg, clip=clip, edge_taper=False)
        return restored[..., kh:-kh, kw:-kw, :]
    shape = image.shape[-3:-1]
    # The trailing axis broadcasts one kernel over the channels.
    otf = psf2otf(kernel, shape)[..., None]
    reg_power = (jnp.abs(psf2otf(reg, shape)) ** 2)[..., None]
    wiener_filter = jnp.conj(otf) / (jnp.abs(otf) ** 2 + balance * reg_power)
    restored = _apply_transfer(wiener_filter, jnp.fft.rfft2(image, axes=_SPATIAL_AXES), shape)
    return jnp.clip(restored, -1, 1) if clip else restored
