"""Blur operators H and their exact adjoints H^T, for one image or a batch with per-image kernels.

Images are NHWC (or HWC) float32 in [0, 1]. A kernel is either one ``(kh, kw)`` array shared by
the batch or per-image kernels ``(B, kh, kw)``; the same kernel blurs every channel.

The blur is a true convolution (the kernel is flipped) centred like
``scipy.ndimage.convolve(x, k, origin=0)``, for odd and even sizes alike::

    y[i, j] = sum_{m, n} k[m, n] * x_ext[i - m + kh // 2, j - n + kw // 2]

where ``x_ext`` extends ``x`` beyond its border as the boundary says:

- ``'circular'``: periodic (ndimage mode ``'wrap'``);
- ``'reflect'``: symmetric, ``d c b a | a b c d`` (ndimage mode ``'reflect'``);
- ``'zero'``: zeros (ndimage mode ``'constant'``, and ``scipy.signal.convolve(mode='same')``
  for odd sizes; for even sizes scipy.signal centres one pixel earlier);
- ``'valid'``: no extension; only outputs whose window lies inside the image, shape
  ``(H - kh + 1, W - kw + 1)`` (``scipy.signal.convolve(mode='valid')``). :func:`crop_valid`
  crops a same-size image to the pixels these outputs are centred on.

Every boundary is computed the same way: extend (pad) ``x`` by ``kh - 1`` rows and ``kw - 1``
columns, then take the 'valid' convolution of the padded image. The adjoint is therefore the
transposed padding (which folds the padded border back onto the image) applied to the 'full'
correlation of ``y``, exact for every boundary.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.checks import check_choice, check_finite, check_rank

BOUNDARIES = ("circular", "reflect", "zero", "valid")
METHODS = ("auto", "spatial", "fft")

# method='auto' takes the FFT path when the kernel's larger side is at least this. Measured on
# the project's (shared, loaded) 2-core CPU: jitted float32 blurs with per-image kernels and the
# 'reflect' boundary, both paths timed alternately, minimum of 7: on 8x256x256x3 the direct sum
# wins at 5x5 (31 ms against 62 ms) and the FFT from 7x7 on (47 against 63 ms; 44 against 100 ms
# at 9x9); on 1x720x1280x3 likewise (89 against 120 ms at 5x5, 72 against 114 ms at 7x7).
FFT_MIN_KERNEL_SIZE = 7

_PAD_MODES = {"circular": "wrap", "reflect": "symmetric", "zero": "constant"}


def blur(x, k, *, boundary: str = "reflect", method: str = "auto"):
    """Convolves each image of ``x`` with its kernel: the forward operator H.

    Args:
      x: image (H, W, C) or batch (B, H, W, C).
      k: kernel (kh, kw) shared by the batch, or per-image kernels (B, kh, kw).
      boundary: one of ``BOUNDARIES`` (see the module docstring).
      method: ``'spatial'`` (direct summation), ``'fft'``, or ``'auto'`` (by kernel size).

    Returns:
      The blurred image(s), shaped like ``x``; for ``'valid'``, with H and W reduced by
      ``kh - 1`` and ``kw - 1``. The dtype is that of ``x`` and ``k`` promoted (at least float32).
    """
    x4, k, batched = _check_operands(x, "x", k, boundary=boundary, method=method)
    if boundary == "valid":
        _check_kernel_fits(x4, k)
    y = _blur_batch(x4, k, boundary=boundary, method=method)
    return y if batched else y[0]


def blur_adjoint(y, k, *, boundary: str = "reflect", method: str = "auto"):
    """Applies H^T, the exact adjoint of ``blur`` with the same kernel and boundary.

    ``<blur(x, k), y> == <x, blur_adjoint(y, k)>`` for every ``x`` and ``y``. For a same-size
    boundary ``y`` has the image's shape; for ``'valid'`` it has the blurred (smaller) shape and
    the result has the image's shape, ``(H + kh - 1, W + kw - 1)``.

    Args:
      y: image (H, W, C) or batch (B, H, W, C) in the output space of ``blur``.
      k: kernel (kh, kw) shared by the batch, or per-image kernels (B, kh, kw).
      boundary: one of ``BOUNDARIES``.
      method: ``'spatial'``, ``'fft'`` or ``'auto'``.
    """
    y4, k, batched = _check_operands(y, "y", k, boundary=boundary, method=method)
    x = _blur_adjoint_batch(y4, k, boundary=boundary, method=method)
    return x if batched else x[0]


def crop_valid(x, kernel_shape):
    """Crops a same-size image to the pixels that a 'valid' blur's outputs are centred on.

    With ``y = blur(x, k, boundary='valid')``, ``crop_valid(x, k.shape[-2:])`` has ``y``'s shape
    and holds, at each pixel, the sharp value under the kernel's centre: the target that matches
    ``y``. For an odd size ``s`` this is a centre crop of ``s // 2`` on every side; for an even
    size it drops ``s // 2 - 1`` rows/columns at the top/left and ``s // 2`` at the bottom/right.

    Args:
      x: image (H, W, C) or batch (B, H, W, C).
      kernel_shape: ``(kh, kw)``, or one int for a square kernel.
    """
    check_rank(x, "x", (3, 4), "an image (H, W, C) or a batch (B, H, W, C)")
    kh, kw = (kernel_shape, kernel_shape) if np.ndim(kernel_shape) == 0 else tuple(kernel_shape)
    height, width = x.shape[-3:-1]
    if not (1 <= kh <= height and 1 <= kw <= width):
        raise ValueError(
            f"kernel_shape: expected sizes between 1 and the image's {(height, width)}, "
            f"got {(kh, kw)}"
        )
    rows = slice(kh - 1 - kh // 2, height - kh // 2)
    cols = slice(kw - 1 - kw // 2, width - kw // 2)
    return x[..., rows, cols, :]


def psf2otf(kernel, shape):
    """Optical transfer function of a kernel on an image grid, as a half spectrum (``rfft2``).

    The kernel is zero-padded to ``shape`` and rolled so that its centre, index
    ``(kh // 2, kw // 2)``, sits at the origin (as ``skimage.restoration.uft.ir2tf``): a product
    with the OTF in the Fourier domain is then a circular convolution centred like
    ``scipy.ndimage.convolve``.

    Args:
      kernel: (..., kh, kw) kernel(s), no larger than ``shape``.
      shape: (H, W), the image size.

    Returns:
      Complex array of shape (..., H, W // 2 + 1).
    """
    kernel = jnp.asarray(kernel)
    kh, kw = kernel.shape[-2:]
    height, width = shape
    if kh > height or kw > width:
        raise ValueError(f"kernel: expected a kernel no larger than {(height, width)}, got {(kh, kw)}")
    pad = [(0, 0)] * (kernel.ndim - 2) + [(0, height - kh), (0, width - kw)]
    padded = jnp.pad(kernel, pad)
    centred = jnp.roll(padded, (-(kh // 2), -(kw // 2)), axis=(-2, -1))
    return jnp.fft.rfft2(centred)


# Jitted so that an eager call compiles once per shape instead of dispatching every tap's slice.
@functools.partial(jax.jit, static_argnames=("boundary", "method"))
def _blur_batch(x, k, *, boundary, method):
    return _valid_convolution(_pad(x, k.shape[-2:], boundary), k, method)


@functools.partial(jax.jit, static_argnames=("boundary", "method"))
def _blur_adjoint_batch(y, k, *, boundary, method):
    kh, kw = k.shape[-2:]
    # The adjoint of a 'valid' convolution is the 'full' correlation: zero-pad by the kernel
    # size less one, then convolve with the flipped kernel.
    full = jnp.pad(y, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    padded = _valid_convolution(full, k[..., ::-1, ::-1], method)
    if boundary == "valid":
        return padded
    # The padding is linear; its transpose folds the padded border back onto the image.
    pad = functools.partial(_pad, kernel_shape=(kh, kw), boundary=boundary)
    (x,) = jax.linear_transpose(pad, jax.ShapeDtypeStruct(y.shape, padded.dtype))(padded)
    return x


def _check_operands(x, name, k, *, boundary, method):
    """Validates the arguments and returns ``x`` as a batch, ``k`` and whether ``x`` was one."""
    check_choice(boundary, "boundary", BOUNDARIES)
    check_choice(method, "method", METHODS)
    check_rank(x, name, (3, 4), "an image (H, W, C) or a batch (B, H, W, C)")
    check_rank(k, "k", (2, 3), "a kernel (kh, kw) or per-image kernels (B, kh, kw)")
    if min(np.shape(k)) < 1:
        raise ValueError(f"k: expected a non-empty kernel, got shape {tuple(np.shape(k))}")
    batched = np.ndim(x) == 4
    if np.ndim(k) == 3 and (not batched or np.shape(k)[0] != np.shape(x)[0]):
        raise ValueError(
            f"k: per-image kernels {tuple(np.shape(k))} need a batch {name} with as many images, "
            f"got {name} of shape {tuple(np.shape(x))}"
        )
    check_finite(x, name)
    check_finite(k, "k")
    dtype = jnp.result_type(x, k, jnp.float32)
    x = jnp.asarray(x, dtype)
    return (x if batched else x[None]), jnp.asarray(k, dtype), batched


def _check_kernel_fits(x, k):
    kh, kw = k.shape[-2:]
    if kh > x.shape[1] or kw > x.shape[2]:
        raise ValueError(
            f"k: a 'valid' blur needs a kernel no larger than the image {x.shape[1:3]}, "
            f"got {(kh, kw)}"
        )


def _pad(x, kernel_shape, boundary):
    """Extends a batch by the border that a 'valid' convolution with the kernel consumes."""
    if boundary == "valid":
        return x
    kh, kw = kernel_shape
    # The kernel's centre sits at s // 2 of its size s; flipped by the convolution, it reaches
    # s - 1 - s // 2 pixels up/left of the output pixel and s // 2 down/right.
    widths = ((0, 0), (kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2), (0, 0))
    return jnp.pad(x, widths, mode=_PAD_MODES[boundary])


def _valid_convolution(x, k, method):
    """'valid' convolution of a batch (B, Hp, Wp, C) with a kernel (kh, kw) or (B, kh, kw)."""
    if method == "auto":
        method = "fft" if max(k.shape[-2:]) >= FFT_MIN_KERNEL_SIZE else "spatial"
    if method == "fft":
        return _fft_valid_convolution(x, k)
    return _direct_valid_convolution(x, k)


def _direct_valid_convolution(x, k):
    """Sums the kernel's taps over shifted views of ``x`` (XLA fuses them into one loop).

    ``lax.conv_general_dilated`` was measured against this on the project's CPU and lost by 10-50x
    for these depthwise, one-kernel-per-image convolutions (3x3 on 4x128x128x3: 16-48 ms against
    0.2-0.4 ms, with the batch folded into feature groups or vmapped alike), and it was slower than
    the FFT even for 3x3; so the spatial path is this direct sum (which is also one fused
    elementwise kernel on a GPU).
    """
    kh, kw = k.shape[-2:]
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    # Per-image taps broadcast against the (B, H, W, C) views; a shared kernel's are scalars.
    weights = k.reshape(k.shape[0], 1, 1, 1, kh, kw) if k.ndim == 3 else k
    result = None
    for m in range(kh):
        for n in range(kw):
            # y[i] = sum_m k[m] x[i + (kh - 1) - m]: the flipped kernel slides over x.
            view = x[:, kh - 1 - m : kh - 1 - m + out_h, kw - 1 - n : kw - 1 - n + out_w, :]
            term = weights[..., m, n] * view
            result = term if result is None else result + term
    return result


def _fft_valid_convolution(x, k):
    """'valid' convolution through zero-padded real FFTs on fast transform lengths.

    A cyclic convolution of length >= the image's only wraps into the first kh - 1 rows (kw - 1
    columns), which the 'valid' output drops; so any longer, faster length is exact. The 2-D
    transforms are done one axis at a time, each moved last: XLA's CPU FFT is single-threaded
    and measured 1.2-1.7x faster this way than ``rfft2`` over the strided axes of a batch of
    720x1280 RGB images (31x31 kernels, 4 images; not measured on a GPU). Cropping the rows
    between the two inverse passes spares the second pass the rows that the output drops.
    """
    kh, kw = k.shape[-2:]
    height, width = x.shape[1:3]
    rows, cols = _fast_fft_length(height), _fast_fft_length(width)
    image_spectrum = _transposed_spectrum(jnp.moveaxis(x, -1, 1), rows, cols)
    kernel_spectrum = _transposed_spectrum(k, rows, cols)
    # Per-image kernels (B, ...) meet the images' (B, C, ...) spectra, a shared kernel all.
    kernel_spectrum = kernel_spectrum[:, None] if k.ndim == 3 else kernel_spectrum
    y = jnp.fft.ifft(image_spectrum * kernel_spectrum, axis=-1)[..., kh - 1 : height]
    y = jnp.fft.irfft(jnp.swapaxes(y, -1, -2), n=cols, axis=-1)[..., kw - 1 : width]
    return jnp.moveaxis(y, 1, -1).astype(x.dtype)


def _transposed_spectrum(a, rows, cols):
    """The 2-D real FFT of the last two axes of ``a``, zero-padded to (rows, cols), transposed.

    Returns (..., cols // 2 + 1, rows): the row transform's frequencies, then the column one's.
    """
    half = jnp.fft.rfft(a, n=cols, axis=-1)
    return jnp.fft.fft(jnp.swapaxes(half, -1, -2), n=rows, axis=-1)


def _fast_fft_length(n: int) -> int:
    """The smallest length >= n with no prime factor above 5 (pocketfft's fast sizes)."""
    length = n
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1
