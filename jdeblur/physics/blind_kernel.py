"""Blind kernel estimation with nothing to learn: an L0-gradient latent image and a least-squares
kernel, alternated from coarse to fine.

Images are NHWC float32 in [0, 1]; kernels follow ``jdeblur.physics.kernels`` (non-negative,
summing to 1, centre pixel ``size // 2``).

A uniform blur is a property of the whole image, and its evidence is in the strong edges: a step
edge of the sharp image appears in the blurred one as the kernel's profile across it. This module
follows the alternating scheme of Xu, Zheng & Jia ("Unnatural L0 sparse representation for natural
image deblurring", CVPR 2013) and Pan, Hu, Su & Yang ("Deblurring text images via L0-regularized
intensity and gradient prior", CVPR 2014), coarse to fine as Cho & Lee ("Fast motion deblurring",
SIGGRAPH Asia 2009):

- latent step: ``argmin_x ||k * x - y||^2 + lam ||grad x||_0``, by half-quadratic splitting (the
  gradient where its squared magnitude is at least ``lam / beta``, else 0; then a closed-form
  Fourier solve; ``beta`` doubled from ``2 lam`` to 1e5). The L0 prior keeps only strong edges,
  so the latent image is a cartoon of the sharp one; that is what keeps the alternation away from
  the no-blur solution which natural-image priors prefer (Levin et al., "Understanding and
  evaluating blind deconvolution algorithms", CVPR 2009).
- kernel step: the least-squares kernel fitting the derivatives of ``y`` by those of ``k * x``
  (``jdeblur.physics.kernel_estimation.fit_kernel``), where only the strongest ``keep`` fraction
  of the latent's gradients is kept (as Cho & Lee and Pan et al. select edges: weak gradients of a
  cartoon are mostly wrong), made a valid kernel (``project_kernel``: small values cut,
  normalised, centred). The fit sees the observed crop only (``_crop_fit``), never its mirror
  images: see below.
- ``lam`` shrinks by 1.1 after each round (to 1e-4) and carries over to the next scale; each scale
  starts from the previous scale's kernel resized, the kernel side growing by about sqrt(2) from 3.

Channels share the kernel, so the estimate works on the mean of the channels. The latent step's
Fourier solve is circular: the observation is extended by mirroring (what a 'reflect' boundary
makes periodic). A mirrored copy of ``k * x`` is the mirrored ``x`` blurred by the *mirrored*
kernel, so the mirrored canvas is one convolution only for kernels symmetric about both axes
(Gaussian, disk). A kernel fitted on the whole canvas averages a motion at angle ``a`` with its
mirror images at ``-a``: an oblique line comes out as a short cross or blob, whatever the latent
(measured: given the true sharp image as the latent, all its gradients, the L1 error of 19-px
linear-motion kernels was 0.63 on the canvas against 0.06 on the crop alone). So the kernel step
fits the observed crop alone: the latent's gradients within half a kernel of the crop's border
(where the latent mixes in the wrong mirror images, and where ``k * x`` would reach outside the
crop) are dropped, and the observation's gradients outside the crop are zero. The Tikhonov weight ``beta`` (0.1 of
the mean energy) is what keeps the fit on one crop from speckle in a wide kernel (a disk of
radius 5.7 on fur: L1 error about 0.75 at 0.01, 0.65 at 0.1).

Only a central crop of at most ``max_side`` pixels a side is used: 256 x 256 pixels hold plenty
of edges for kernels up to about 25 pixels, and the cost grows with the area.
"""
import math

import jax
import jax.numpy as jnp

from jdeblur.checks import check_rank
from jdeblur.physics.kernel_estimation import fit_kernel, project_kernel
from jdeblur.physics.kernels import check_kernel_size
from jdeblur.physics.operators import psf2otf

_BETA_MAX = 1e5
_LAM_MIN = 1e-4

# The search's default settings (``estimate_kernel``'s arguments; jdeblur.models.two_stage's fields).
LAM = 4e-3
ROUNDS = 5
KERNEL_BETA = 0.1
KERNEL_THRESHOLD = 0.05
KEEP = 0.1
MAX_SIDE = 256


def estimate_kernel(blurred, size: int, *, lam: float = LAM, rounds: int = ROUNDS, beta: float = KERNEL_BETA,
                    threshold: float = KERNEL_THRESHOLD, keep: float = KEEP, max_side: int = MAX_SIDE):
    """The blur kernel of each image of a batch, estimated from the blurred image alone.

    Args:
      blurred: (B, H, W, C) observations, uniformly blurred (any boundary; 'reflect' suits best).
      size: side of the returned kernels (static odd int, at least the blur's support).
      lam: weight of the L0 gradient prior at the coarsest scale.
      rounds: (latent, kernel) rounds per scale.
      beta: Tikhonov weight of the kernel fit, relative to the latent derivatives' energy.
      threshold: kernel values below this fraction of the maximum are cut after each fit.
      keep: the fraction of the latent's gradients (the strongest, away from the crop's border) the
        kernel is fitted to.
      max_side: the estimate uses the central crop of at most this many pixels a side.

    Returns:
      (B, size, size) float32 valid kernels (non-negative, summing to 1, centred). No gradient
      flows through the estimate (it is a search, not a smooth function of the image).
    """
    check_rank(blurred, "blurred", (4,), "a batch (B, H, W, C)")
    check_kernel_size(size)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd kernel size (a centre pixel), got {size}")
    height, width = blurred.shape[1:3]
    if size > min(height, width):
        raise ValueError(f"size: expected a kernel no larger than the image {(height, width)}, got {size}")
    gray = jnp.mean(jax.lax.stop_gradient(jnp.asarray(blurred, jnp.float32)), axis=-1)
    side_y, side_x = min(height, max_side), min(width, max_side)
    top, left = (height - side_y) // 2, (width - side_x) // 2
    gray = gray[:, top:top + side_y, left:left + side_x]
    if not 0 < keep <= 1:
        raise ValueError(f"keep: expected a fraction in (0, 1], got {keep!r}")
    estimate = jax.vmap(lambda image: _coarse_to_fine(image, size, lam, rounds, beta, threshold, keep))
    return estimate(gray)


def pyramid_sizes(size: int) -> list[int]:
    """The kernel side at each scale, coarse to fine: odd, from 3 up to ``size``, ~sqrt(2) apart."""
    sizes = [size]
    while sizes[-1] > 3:
        smaller = round(sizes[-1] / math.sqrt(2))
        sizes.append(max(3, min(smaller + 1 - smaller % 2, sizes[-1] - 2)))
    return sizes[::-1]


def l0_latent(y, kernel, lam, *, beta_max: float = _BETA_MAX):
    """``argmin_x ||kernel * x - y||^2 + lam ||grad x||_0`` (circular, half-quadratic splitting).

    Args:
      y: (H, W) periodic observation.
      kernel: (kh, kw) kernel.
      lam: prior weight (a scalar, may be traced).

    Returns:
      (H, W) latent image.
    """
    shape = y.shape
    transfer = psf2otf(kernel, shape)
    along_x, along_y = _difference_transfers(shape)
    difference_energy = jnp.abs(along_x) ** 2 + jnp.abs(along_y) ** 2
    data = jnp.conj(transfer) * jnp.fft.rfft2(y)
    kernel_energy = jnp.abs(transfer) ** 2
    steps = math.ceil(math.log2(beta_max / (2 * _LAM_MIN)))  # static; beta stops growing at beta_max

    def step(_, carry):
        x, weight = carry
        gx, gy = _forward_differences(x)
        keep = gx ** 2 + gy ** 2 >= lam / weight
        gx, gy = jnp.where(keep, gx, 0.0), jnp.where(keep, gy, 0.0)
        prior = jnp.conj(along_x) * jnp.fft.rfft2(gx) + jnp.conj(along_y) * jnp.fft.rfft2(gy)
        x = jnp.fft.irfft2((data + weight * prior) / (kernel_energy + weight * difference_energy), s=shape)
        return x, jnp.minimum(2 * weight, beta_max)

    return jax.lax.fori_loop(0, steps, step, (y, 2 * lam))[0]


def _coarse_to_fine(gray, size, lam, rounds, beta, threshold, keep):
    height, width = gray.shape
    kernel = jnp.zeros((3, 3), jnp.float32).at[1, 1].set(1.0)
    lam = jnp.float32(lam)
    for side in pyramid_sizes(size):
        scale = side / size
        shape = (max(2 * side, round(height * scale)), max(2 * side, round(width * scale)))
        y = _mirror(jax.image.resize(gray, shape, "linear", antialias=True))
        if kernel.shape[0] != side:
            kernel = jnp.maximum(jax.image.resize(kernel, (side, side), "linear"), 0.0)
            kernel = kernel / jnp.sum(kernel)

        def one_round(_, carry, y=y, side=side, shape=shape):
            kernel, lam = carry
            latent = l0_latent(y, kernel, lam)
            raw = fit_kernel(_crop_fit(latent, y, shape, side, keep), side, beta=beta)
            return project_kernel(raw[0], threshold=threshold), jnp.maximum(lam / 1.1, _LAM_MIN)

        kernel, lam = jax.lax.fori_loop(0, rounds, one_round, (kernel, lam))
    return kernel


def _crop_fit(latent, canvas, crop_shape, side, keep):
    """The (latent, observed) derivative pairs of the kernel fit, from the crop alone (not its mirrors).

    Args:
      latent: (2H, 2W) latent image of the mirrored canvas.
      canvas: (2H, 2W) the mirrored observation, the crop at its top left.
      crop_shape: (H, W), static.
      side: kernel side (static): latent gradients within ``side // 2`` of the crop's border are
        dropped, so their blur stays inside the crop.
      keep: the fraction of the remaining latent gradients kept (the strongest).

    Returns:
      Two (latent, observed) pairs of (1, 2H, 2W, 1) derivative maps for ``fit_kernel``.
    """
    height, width = crop_shape
    margin = max(1, side // 2)
    inside = jnp.zeros(canvas.shape, bool).at[:height, :width].set(True)
    interior = jnp.zeros(canvas.shape, bool).at[margin:height - margin, margin:width - margin].set(True)
    latent_x, latent_y = _forward_differences(latent)
    energy = jnp.where(interior, latent_x ** 2 + latent_y ** 2, -1.0)
    # The strongest `keep` of the interior's pixels (the rest of the canvas sits at -1, below all).
    share = keep * (height - 2 * margin) * (width - 2 * margin) / energy.size
    strong = interior & (energy >= jnp.quantile(energy, 1.0 - share))
    return [(jnp.where(strong, latent, 0.0)[None, ..., None], jnp.where(inside, observed, 0.0)[None, ..., None])
            for latent, observed in zip((latent_x, latent_y), _forward_differences(canvas))]


def _mirror(image):
    """(H, W) -> (2H, 2W): the image and its reflections, periodic without a jump at the seams."""
    rows = jnp.concatenate([image, image[::-1]], axis=0)
    return jnp.concatenate([rows, rows[:, ::-1]], axis=1)


def _forward_differences(x):
    """Circular forward differences along x (columns) and y (rows)."""
    return jnp.roll(x, -1, axis=1) - x, jnp.roll(x, -1, axis=0) - x


def _difference_transfers(shape):
    """Half spectra of ``_forward_differences`` (x[i + 1] - x[i] is a circular filter -1 at 0, 1 at -1)."""
    along_x = jnp.zeros(shape, jnp.float32).at[0, 0].set(-1.0).at[0, -1].set(1.0)
    along_y = jnp.zeros(shape, jnp.float32).at[0, 0].set(-1.0).at[-1, 0].set(1.0)
    return jnp.fft.rfft2(along_x), jnp.fft.rfft2(along_y)
