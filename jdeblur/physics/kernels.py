"""Parametric blur kernels: Gaussian, defocus disk, box and linear motion.

A kernel is a float32 ``(size, size)`` array, non-negative, summing to 1. ``size`` is a static
Python int; odd sizes are the norm. The centre pixel is ``(size // 2, size // 2)`` for every
size, so an even-sized kernel has one more row and column before the centre than after it
(the convention of ``scipy.ndimage.convolve`` and ``jnp.fft.ifftshift``); shapes that must fit
are fitted to the symmetric part, ``(size - 1) // 2`` pixels each side of the centre.

Each kernel is the continuous point-spread function integrated over the unit square of each
pixel (a sensor with full fill factor), computed analytically or by exact quadrature, so that
small blurs keep their width (a Gaussian of sigma 0.3 spreads 9% of its mass to the
neighbours instead of collapsing to a delta) and edges are anti-aliased.

Geometry: ``x`` runs along columns (right), ``y`` along rows (down); angles are in degrees,
counter-clockwise as the kernel is displayed (rows down), measured from the +x axis.
All functions are jittable and vmappable over their traced arguments. Images elsewhere in the
package are NHWC (or HWC) float32 in [0, 1]; these functions only make the kernels.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from jdeblur.checks import check_positive

# Below these widths a family is a delta; clamping keeps 0/0 out of the normalisation.
_MIN_WIDTH = 1e-4
_MIN_SIGMA = 1e-2
# Gauss-Legendre nodes per pixel row for the rotated Gaussian (see gaussian_kernel).
_ROW_NODES = 4


def check_kernel_size(size) -> None:
    """Raises ValueError unless ``size`` is a positive Python int (kernel shapes are static)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: expected a static Python int >= 1, got {size!r}")


def fit_radius(size: int) -> int:
    """Pixels each side of the centre that a kernel of ``size`` holds symmetrically."""
    return (size - 1) // 2


def pixel_offsets(size: int) -> jax.Array:
    """Offsets of the pixel centres from the centre pixel, ``arange(size) - size // 2`` (float32)."""
    return jnp.arange(size, dtype=jnp.float32) - size // 2


def pixel_edges(size: int) -> jax.Array:
    """The ``size + 1`` pixel boundaries along one axis, as offsets from the centre pixel's centre."""
    return jnp.arange(size + 1, dtype=jnp.float32) - size // 2 - 0.5


def normalize_kernel(kernel: jax.Array) -> jax.Array:
    """Scales a non-negative kernel to sum to 1 (float32)."""
    kernel = jnp.maximum(kernel.astype(jnp.float32), 0.0)
    return kernel / jnp.sum(kernel)


def kernel_centroid(kernel: jax.Array) -> jax.Array:
    """Centre of mass ``(x, y)`` of a kernel (or a batch ``(..., H, W)``), in pixels from its centre pixel."""
    size_y, size_x = kernel.shape[-2:]
    mass = jnp.sum(kernel, axis=(-2, -1))
    x = jnp.sum(kernel * pixel_offsets(size_x), axis=(-2, -1)) / mass
    y = jnp.sum(kernel * pixel_offsets(size_y)[:, None], axis=(-2, -1)) / mass
    return jnp.stack([x, y], axis=-1)


def _interval_overlap(lo_a, hi_a, lo_b, hi_b):
    return jnp.maximum(0.0, jnp.minimum(hi_a, hi_b) - jnp.maximum(lo_a, lo_b))


def _unit_direction(angle):
    """(dx, dy) in array axes (rows down) of a direction ``angle`` degrees counter-clockwise."""
    theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
    return jnp.cos(theta), -jnp.sin(theta)


def gaussian_kernel(size: int, *, sigma, angle=0.0) -> jax.Array:
    """Gaussian kernel, isotropic or anisotropic and rotated, integrated over each pixel.

    Args:
      size: kernel side (static int).
      sigma: standard deviation in pixels: a scalar (isotropic) or a pair ``(sigma_x, sigma_y)``,
        ``sigma_x`` along the direction ``angle`` and ``sigma_y`` across it. Values below 0.01
        are treated as 0.01 (a delta at any pixel size).
      angle: rotation of the ``sigma_x`` axis in degrees, counter-clockwise as displayed.

    Returns:
      float32 ``(size, size)`` kernel, truncated to the window and renormalised.

    The pixel integral is exact along one axis (``erf``); along the other (the one of larger
    variance), the row masses are exact and the distribution within each row uses 4-point
    Gauss-Legendre quadrature, so isotropic and axis-aligned kernels are exact (to float32) and
    rotated ones are within 1e-5 of the exact pixel integral for sigmas >= 0.4 (1e-3 relative
    for a 0.1-wide sliver). Its covariance is the Gaussian's plus ``1/12`` per axis (the pixel).
    """
    check_kernel_size(size)
    check_positive(sigma, "sigma", allow_zero=True)
    sigma = jnp.maximum(jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (2,)), _MIN_SIGMA)
    dx, dy = _unit_direction(angle)
    along, across = sigma[0] ** 2, sigma[1] ** 2
    # Covariance in array axes: along * d d^T + across * n n^T, d = (dx, dy), n = (-dy, dx).
    var_x = along * dx**2 + across * dy**2
    var_y = along * dy**2 + across * dx**2
    cov_xy = (along - across) * dx * dy
    # Integrate numerically over the axis of larger variance (its density is the smoother one),
    # then transpose back if that was x.
    rows_are_x = var_x > var_y
    var_outer = jnp.where(rows_are_x, var_x, var_y)
    var_inner = jnp.where(rows_are_x, var_y, var_x)
    slope = cov_xy / var_outer  # E[inner | outer] = slope * outer, |slope| <= 1
    inner_std = jnp.sqrt(jnp.maximum(var_inner - slope * cov_xy, 0.0)) + 1e-12
    outer_std = jnp.sqrt(var_outer)

    edges = pixel_edges(size)
    row_mass = jnp.diff(ndtr(edges / outer_std))
    nodes, node_weights = (jnp.asarray(a, jnp.float32) for a in np.polynomial.legendre.leggauss(_ROW_NODES))
    outer = pixel_offsets(size)[:, None] + 0.5 * nodes  # (size, nodes)
    # Relative density within each row; subtracting the row's peak exponent keeps rows far in
    # the tail (all exponents below float32's range) from turning into 0/0.
    log_density = -0.5 * (outer / outer_std) ** 2
    density = node_weights * jnp.exp(log_density - jnp.max(log_density, axis=1, keepdims=True))
    density = density / jnp.sum(density, axis=1, keepdims=True)
    # erf is about twice as fast as ndtr; its lost tail precision (~1e-8 absolute) is harmless
    # in a distribution that is then scaled by the exact row mass.
    # (The CDF less its constant 1/2, which the differences cancel.)
    inner_cdf = 0.5 * jax.lax.erf((edges - slope * outer[..., None]) / (np.sqrt(2.0) * inner_std))
    within_row = jnp.einsum("rn,rnc->rc", density, jnp.diff(inner_cdf, axis=-1))
    kernel = row_mass[:, None] * within_row
    kernel = jnp.where(rows_are_x, kernel.T, kernel)
    return normalize_kernel(kernel)


def _quadrant_disk_area(a, b, radius):
    """Area of {0 <= u <= a, 0 <= v <= b, u^2 + v^2 <= radius^2} for a, b >= 0."""
    a = jnp.minimum(a, radius)
    b = jnp.minimum(b, radius)

    def height(u):  # sqrt(r^2 - u^2), factored so that u == r gives exactly 0 in float32
        return jnp.sqrt(jnp.maximum((radius - u) * (radius + u), 0.0))

    def under_arc(u):  # integral_0^u sqrt(r^2 - t^2) dt
        # atan2(u, h) rather than arcsin(u / r): near the tangent u ~ r, arcsin's infinite slope
        # turns the rounding of u / r into errors of 1e-3 in float32.
        h = height(u)
        return 0.5 * (u * h + radius**2 * jnp.arctan2(u, h))

    # Where the circle leaves the strip v <= b; the region is a rectangle up to there.
    u_star = jnp.minimum(height(b), a)
    return u_star * b + under_arc(a) - under_arc(u_star)


def disk_kernel(size: int, *, radius) -> jax.Array:
    """Defocus (pillbox) kernel: the exact area of each pixel covered by a disk of ``radius`` pixels.

    The area comes from the closed-form area of a disk inside a quadrant, evaluated at the pixel
    corners, so edges are anti-aliased without supersampling. Radii below 1e-4 give a delta;
    a disk larger than the window is cut to it and renormalised.
    """
    check_kernel_size(size)
    check_positive(radius, "radius", allow_zero=True)
    radius = jnp.maximum(jnp.asarray(radius, jnp.float32), _MIN_WIDTH)
    edges = pixel_edges(size)
    u, v = edges[None, :], edges[:, None]
    # Signed area of the disk in the rectangle between the centre and each corner; 2-D
    # differences of it give the area in each pixel.
    corner = jnp.sign(u) * jnp.sign(v) * _quadrant_disk_area(jnp.abs(u), jnp.abs(v), radius)
    area = corner[1:, 1:] - corner[1:, :-1] - corner[:-1, 1:] + corner[:-1, :-1]
    return normalize_kernel(area)


def box_kernel(size: int, *, width, height=None) -> jax.Array:
    """Uniform box of ``width`` x ``height`` pixels (``height`` defaults to ``width``), centred.

    Non-integer sides cover their edge pixels partially (anti-aliased); an odd integer side is
    the classic box of ones, an even one puts half-weights on its two edge pixels to stay centred.
    Sides are capped to the window and sides below 1e-4 give a delta.
    """
    check_kernel_size(size)
    height = width if height is None else height
    check_positive(width, "width", allow_zero=True)
    check_positive(height, "height", allow_zero=True)
    limit = 2.0 * fit_radius(size) + 1.0
    edges = pixel_edges(size)

    def coverage(side):
        half = 0.5 * jnp.clip(jnp.asarray(side, jnp.float32), _MIN_WIDTH, limit)
        return _interval_overlap(edges[:-1], edges[1:], -half, half)

    return normalize_kernel(coverage(height)[:, None] * coverage(width)[None, :])


def linear_motion_kernel(size: int, *, length, angle=0.0) -> jax.Array:
    """Uniform linear motion: a centred segment of ``length`` pixels at ``angle`` degrees.

    Each pixel holds the length of the segment inside it (exact, a thin-line area model), so the
    kernel is sub-pixel and anti-aliased; a horizontal segment of odd integer length L is the
    classic ``ones(L) / L`` row. A segment too long for the window at that angle is shortened to
    the longest that fits (at most ``size`` pixels at 0 degrees); lengths below 1e-4 give a delta.
    """
    check_kernel_size(size)
    check_positive(length, "length", allow_zero=True)
    dx, dy = _unit_direction(angle)
    bound = fit_radius(size) + 0.5
    half = 0.5 * jnp.maximum(jnp.asarray(length, jnp.float32), _MIN_WIDTH)
    half = jnp.minimum(half, bound / jnp.maximum(jnp.abs(dx), jnp.abs(dy)))
    edges = pixel_edges(size)

    def crossing(direction):
        # Parameter interval [lo, hi] (arc length from the centre) inside each pixel slab; a
        # direction of exactly 0 becomes a tiny one so the slab holding the centre spans everything.
        direction = jnp.where(jnp.abs(direction) < 1e-20, 1e-20, direction)
        t = edges / direction
        return jnp.minimum(t[:-1], t[1:]), jnp.maximum(t[:-1], t[1:])

    lo_x, hi_x = crossing(dx)
    lo_y, hi_y = crossing(dy)
    lo = jnp.maximum(jnp.maximum(lo_y[:, None], lo_x[None, :]), -half)
    hi = jnp.minimum(jnp.minimum(hi_y[:, None], hi_x[None, :]), half)
    return normalize_kernel(jnp.maximum(hi - lo, 0.0))
