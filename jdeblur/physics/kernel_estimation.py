"""Blur kernels estimated from a blurred image and a sharp estimate of it, and made valid kernels.

Images are NHWC float32 in [0, 1]; kernels follow ``jdeblur.physics.kernels`` (float32,
non-negative, summing to 1, centre pixel ``size // 2``; "centred" means the centre of mass is on
the centre pixel, as the trajectory kernels are made).

A uniform blur is a property of the whole image: every pixel of ``y = k * x + n`` carries evidence
about ``k``. Given a sharp estimate ``x_hat`` (from a network), the least-squares kernel over the
whole frame is closed form in the Fourier domain, as in the kernel step of alternating blind
deconvolution (Cho & Lee, "Fast motion deblurring", SIGGRAPH Asia 2009) and of the learned
blind deconvolution of Schuler et al. ("Learning to deblur", TPAMI 2016):

    K = sum_d conj(D_d X) (D_d Y) / (sum_d |D_d X|^2 + beta)

over the horizontal and vertical derivatives ``D_d`` (edges carry the evidence; flat regions and
the unknown mean do not), with both images multiplied by a smooth window first, so that the
frame's border (where ``y`` mixes in scene the frame does not show) does not wrap around.
``project_kernel`` then makes it a valid kernel: the central ``size x size`` crop, negative and
small values cut (below ``threshold`` of the maximum, as Cho & Lee prune noise), normalised, and
shifted by a sub-pixel amount so that its centre of mass is on the centre pixel. Every step is
differentiable, so a network producing ``x_hat`` can be trained through it.
"""
import jax
import jax.numpy as jnp

from jdeblur.checks import check_rank
from jdeblur.physics.kernels import check_kernel_size, kernel_centroid, pixel_offsets

_SPATIAL_AXES = (1, 2)


def least_squares_kernel(blurred, sharp, size: int, *, beta=1e-3, window: float = 0.1):
    """The kernel that best maps ``sharp`` to ``blurred`` in least squares (derivatives, windowed).

    Args:
      blurred: (B, H, W, C) observations.
      sharp: (B, H, W, C) sharp estimates on the same grid (aligned with ``blurred`` as the sharp
        target of a 'valid' blur is: ``jdeblur.physics.operators.crop_valid``).
      size: side of the returned kernels (static int).
      beta: Tikhonov weight, relative to the mean spectral energy of the sharp derivatives.
      window: the fraction of each side over which the Tukey window rises from 0 to 1.

    Returns:
      (B, size, size) float32 raw kernels (not yet non-negative or normalised; ``project_kernel``).
    """
    check_rank(blurred, "blurred", (4,), "a batch (B, H, W, C)")
    check_rank(sharp, "sharp", (4,), "a batch (B, H, W, C)")
    check_kernel_size(size)
    if blurred.shape != sharp.shape:
        raise ValueError(f"sharp: expected the shape of blurred {tuple(blurred.shape)}, got {tuple(sharp.shape)}")
    height, width = blurred.shape[1:3]
    if size > min(height, width):
        raise ValueError(f"size: expected a kernel no larger than the image {(height, width)}, got {size}")
    taper = _tukey(height, window)[:, None, None] * _tukey(width, window)[None, :, None]
    pairs = [(taper * jnp.diff(sharp, axis=axis, append=_edge(sharp, axis)),
              taper * jnp.diff(blurred, axis=axis, append=_edge(blurred, axis))) for axis in _SPATIAL_AXES]
    return fit_kernel(pairs, size, beta=beta)


def fit_kernel(pairs, size: int, *, beta=1e-3):
    """The least-squares kernel mapping each sharp derivative to its blurred one, all pairs at once.

    ``K = sum_d conj(S_d) B_d / (sum_d |S_d|^2 + beta * mean(sum_d |S_d|^2))`` in the Fourier
    domain (circular), summed over the channels too (they share the kernel).

    Args:
      pairs: a sequence of (sharp, blurred) derivative images, each (B, H, W, C).
      size: side of the returned kernels (static int, at most min(H, W)).
      beta: Tikhonov weight, relative to the mean spectral energy of the sharp derivatives.

    Returns:
      (B, size, size) float32 raw kernels (``project_kernel`` makes them valid).
    """
    height, width = pairs[0][0].shape[1:3]
    numerator = denominator = 0.0
    for sharp, blurred in pairs:
        x_spectrum = jnp.fft.rfft2(sharp, axes=_SPATIAL_AXES)
        y_spectrum = jnp.fft.rfft2(blurred, axes=_SPATIAL_AXES)
        numerator = numerator + jnp.sum(jnp.conj(x_spectrum) * y_spectrum, axis=-1)
        denominator = denominator + jnp.sum(jnp.abs(x_spectrum) ** 2, axis=-1)
    scale = jnp.mean(denominator, axis=(1, 2), keepdims=True)
    full = jnp.fft.irfft2(numerator / (denominator + beta * scale), s=(height, width), axes=(1, 2))
    # The kernel's centre pixel is at index 0 of the circular result: roll it to size // 2.
    centre = size // 2
    return jnp.roll(full, (centre, centre), axis=(1, 2))[:, :size, :size]


def project_kernel(kernel, *, threshold: float = 0.05):
    """Makes raw kernels valid: ``>= 0``, small values cut, summing to 1, centre of mass on the centre.

    Args:
      kernel: (..., size, size) raw kernels.
      threshold: values below this fraction of each kernel's maximum are set to 0.

    Returns:
      Kernels of the same shape, float32.
    """
    kernel = jnp.asarray(kernel, jnp.float32)
    peak = jnp.max(kernel, axis=(-2, -1), keepdims=True)
    kernel = jax.nn.relu(kernel - threshold * jnp.maximum(peak, 0.0))
    # An all-zero estimate (nothing above the threshold) falls back to the identity blur.
    total = jnp.sum(kernel, axis=(-2, -1), keepdims=True)
    size_y, size_x = kernel.shape[-2:]
    delta = jnp.zeros(kernel.shape[-2:], jnp.float32).at[size_y // 2, size_x // 2].set(1.0)
    kernel = jnp.where(total > 0, kernel / jnp.where(total > 0, total, 1.0), delta)
    return centre_kernel(kernel)


def centre_kernel(kernel, *, passes: int = 3):
    """Shifts kernels (..., H, W) by sub-pixel amounts so that their centre of mass is the centre pixel.

    Linear interpolation moves the centre of mass by exactly the shift when no mass leaves the
    window. Mass that does leave it (a kernel reaching its border) is dropped and the rest
    renormalised, which moves the centre again; each further pass shifts by what is left. A
    kernel well inside its window is centred exactly; random noise filling the whole window is
    left within 0.1 px of the centre after 3 passes (tested).
    """
    for _ in range(passes):
        centroid = jax.lax.stop_gradient(kernel_centroid(kernel))
        kernel = _shift_axis(kernel, -centroid[..., 0], axis=-1)
        kernel = _shift_axis(kernel, -centroid[..., 1], axis=-2)
        kernel = kernel / jnp.sum(kernel, axis=(-2, -1), keepdims=True)
    return kernel


def _shift_axis(kernel, shift, *, axis):
    """Moves the mass of each kernel by ``shift`` pixels along ``axis`` (tent interpolation)."""
    size = kernel.shape[axis]
    offsets = pixel_offsets(size)
    # weights[..., new, old]: how much of old pixel's mass lands on new pixel after the shift.
    moved = offsets[None, :] + shift[..., None, None]
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(offsets[:, None] - moved))
    if axis == -1:
        return jnp.einsum("...ij,...nj->...in", kernel, weights)
    return jnp.einsum("...ij,...ni->...nj", kernel, weights)


def _tukey(n: int, fraction: float):
    """A Tukey (tapered cosine) window of length ``n``, rising over ``fraction`` of it at each end."""
    ramp = max(1, int(round(fraction * n)))
    position = jnp.arange(n, dtype=jnp.float32)
    rise = jnp.minimum(position, n - 1 - position) / ramp
    return jnp.where(rise >= 1, 1.0, 0.5 - 0.5 * jnp.cos(jnp.pi * jnp.minimum(rise, 1.0)))


def _edge(image, axis):
    """The last row/column repeated: forward differences with a zero difference at the far border."""
    return jax.lax.slice_in_dim(image, image.shape[axis] - 1, image.shape[axis], axis=axis)
