"""Richardson-Lucy deconvolution, equal to ``skimage.restoration.richardson_lucy`` by default.

Images are NHWC (or HWC) float32 in [0, 1]; a kernel is one (kh, kw) array for the whole batch
or (B, kh, kw) with one kernel per image, applied to every channel alike.

The iteration is skimage's, starting from 0.5 everywhere::

    blurred = blur(x, k) + 1e-12
    x <- x * blur(y / blurred, flip(k))

(with ``y / blurred`` set to 0 where ``blurred < filter_epsilon`` when that is given) and a final
clip to [-1, 1]. skimage blurs with ``scipy.signal.convolve(mode='same')``, a zero boundary: the
default ``boundary='zero'`` reproduces it, but the image then darkens towards its borders, because
the zero padding makes a pixel near the border look dimmer than it is. For photos prefer
``boundary='reflect'``: blurring a constant image then gives the same constant, so a sharp image
that explains ``y`` is a fixed point everywhere. With a zero or circular boundary the correction
step ``blur(., flip(k))`` is the exact adjoint of the blur, which makes the iteration the
expectation-maximisation algorithm for Poisson noise.

Blurs are centred like ``scipy.ndimage.convolve`` (``jdeblur.physics.operators``), at
``(kh // 2, kw // 2)``. An even-sized kernel is first given a zero last row/column, which keeps
that centre and makes the correction step the exact adjoint of the blur, so the iteration stays
the EM algorithm. For odd sizes this is skimage's iteration, to rounding. For even sizes it is not,
and the two differ by far more than a shift: skimage's ``scipy.signal.convolve(mode='same')``
centres the blur at ``((kh - 1) // 2, (kw - 1) // 2)`` but its correction with the flipped kernel
one pixel further on, so its correction is not the adjoint of its blur. Measured on the tests'
96x96 camera crop (``tests/restore/conftest.py``) with even Gaussian kernels (sigma 1) of 4x4 to
8x8: after the best shift by up to one pixel the two results still differ by 0.09 to 0.11 (in
[0, 1], 8-pixel border left out) after 10 iterations, and by 0.39 to 0.54 after 30
(``tests/restore/test_richardson_lucy.py``).
"""
import functools

import jax
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_positive
from jdeblur.physics.operators import blur
from jdeblur.restore.arguments import check_num_iter, prepare_problem

BOUNDARIES = ("zero", "reflect", "circular")
# skimage's guard against division by zero, kept for equality with it.
_DIVISION_GUARD = 1e-12


def richardson_lucy(image, kernel, *, num_iter=50, clip=True, filter_epsilon=None, boundary="zero"):
    """Richardson-Lucy deconvolution with a static number of iterations.

    Args:
      image: (H, W, C) or (B, H, W, C) blurred, non-negative image.
      kernel: (kh, kw) or per-image (B, kh, kw) non-negative blur kernel.
      num_iter: number of iterations (Python int >= 1); fewer iterations regularise more.
      clip: clip the result to [-1, 1] (skimage's convention).
      filter_epsilon: if given, zero the correction ratio where the re-blurred estimate is below
        it (skimage's guard against dividing by tiny values).
      boundary: 'zero' (skimage), 'reflect' (better for photos) or 'circular'.

    Returns:
      The restored image, the shape of ``image``, in its float dtype (float32, or float64 for a float64
      image under x64, as scikit-image; see ``jdeblur.restore.arguments``).
    """
    image, kernel = prepare_problem(image, kernel)
    num_iter = check_num_iter(num_iter)
    check_choice(boundary, "boundary", BOUNDARIES)
    if filter_epsilon is not None:
        check_positive(filter_epsilon, "filter_epsilon", allow_zero=True)
        filter_epsilon = float(filter_epsilon)
    return _richardson_lucy(
        image, kernel, num_iter=num_iter, clip=bool(clip), filter_epsilon=filter_epsilon, boundary=boundary
    )


@functools.partial(jax.jit, static_argnames=("num_iter", "clip", "filter_epsilon", "boundary"))
def _richardson_lucy(image, kernel, *, num_iter, clip, filter_epsilon, boundary):
    kh, kw = kernel.shape[-2:]
    pad = [(0, 0)] * (kernel.ndim - 2) + [(0, 1 - kh % 2), (0, 1 - kw % 2)]
    kernel = jnp.pad(kernel, pad)
    mirrored = jnp.flip(kernel, axis=(-2, -1))

    def iteration(_, estimate):
        reblurred = blur(estimate, kernel, boundary=boundary) + _DIVISION_GUARD
        ratio = image / reblurred
        if filter_epsilon:
            ratio = jnp.where(reblurred < filter_epsilon, 0, ratio)
        return estimate * blur(ratio, mirrored, boundary=boundary)

    estimate = jax.lax.fori_loop(0, num_iter, iteration, jnp.full_like(image, 0.5))
    return jnp.clip(estimate, -1, 1) if clip else estimate
