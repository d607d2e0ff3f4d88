"""Total-variation deconvolution by the primal-dual algorithm of Chambolle and Pock.

Images are NHWC (or HWC) float32 in [0, 1]; a kernel is one (kh, kw) array for the whole batch
or (B, kh, kw) with one kernel per image, applied to every channel alike.

Solves, for each image and channel,

    min_x  1/2 ||H x - y||^2 + lam TV(x)   subject to  lo <= x <= hi

with ``TV`` the isotropic total variation (sum over pixels of the Euclidean norm of the forward
differences, Neumann boundary) and ``H`` the blur of ``jdeblur.physics.operators`` with the chosen
boundary. The primal-dual form (Chambolle & Pock 2011, J. Math. Imaging Vis. 40:120-145, Alg. 1
with theta = 1) needs only ``H`` and its adjoint, not an FFT inversion, so it works with any
boundary; 'reflect' suits photos, where a circular model would ring at the borders. 'valid'
assumes nothing outside the image: ``x`` is solved on the domain the blur saw, larger by the
kernel size less one, and the part aligned with ``y`` is returned. The coupling
operator is ``K x = (H x, grad x)``; steps ``tau`` (primal) and ``sigma`` (dual) must satisfy
``tau sigma ||K||^2 < 1``. With the bound ``L^2 = m (sum |k|)^2 + 8 >= ||K||^2`` (``||grad||^2 <=
8``; ``m = 2`` for 'reflect', whose padding repeats a pixel at most twice when the kernel is no
larger than the image, else ``m = 1``) the defaults are ``tau = 0.99 sqrt(r) / L`` and
``sigma = 0.99 / (sqrt(r) L)`` with ``r = tau / sigma = 20``: on 96x96 photo crops with Gaussian
blurs and noise 0.002-0.02, ratios 10-30 reached the optimum's objective to 1e-3 in 100-300
iterations, 3-10x faster than ``r = 1``.
"""
import functools

import jax
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_positive
from jdeblur.physics.operators import blur, blur_adjoint
from jdeblur.restore.arguments import check_num_iter, prepare_problem

BOUNDARIES = ("reflect", "zero", "circular", "valid")
_STEP_SAFETY = 0.99
_STEP_RATIO = 20.0  # tau / sigma, measured (module docstring)
_ROW_AXIS, _COL_AXIS = -3, -2


def gradient(x):
    """Forward differences of an HWC/NHWC image along rows and columns, zero on the last row/column.

    Returns:
      ``(d_rows, d_cols)``, each the shape of ``x``.
    """
    return (
        jnp.diff(x, axis=_ROW_AXIS, append=x[..., -1:, :, :]),
        jnp.diff(x, axis=_COL_AXIS, append=x[..., :, -1:, :]),
    )


def divergence(d_rows, d_cols):
    """Discrete divergence, the negative adjoint of :func:`gradient`."""
    return _backward_difference(d_rows, _ROW_AXIS) + _backward_difference(d_cols, _COL_AXIS)


def _backward_difference(p, axis):
    # p_i - p_(i-1) with p_(-1) = 0 and the last entry dropped: the gradient's last difference
    # is identically zero, so that entry of p never meets x.
    axis %= p.ndim
    inner = jax.lax.slice_in_dim(p, 0, p.shape[axis] - 1, axis=axis)
    pad_before = [(0, 0)] * p.ndim
    pad_after = list(pad_before)
    pad_before[axis], pad_after[axis] = (1, 0), (0, 1)
    return jnp.pad(inner, pad_after) - jnp.pad(inner, pad_before)


def tv_deconvolution(
    image, kernel, *, lam=0.005, num_iter=200, boundary="reflect", tau=None, sigma=None, bounds=(0.0, 1.0)
):
    """Isotropic-TV-regularised deconvolution, per channel, by Chambolle-Pock.

    Args:
      image: (H, W, C) or (B, H, W, C) blurred image.
      kernel: (kh, kw) or per-image (B, kh, kw) blur kernel.
      lam: TV weight >= 0; about half the noise standard deviation did best on photo crops.
      num_iter: number of primal-dual iterations (Python int >= 1).
      boundary: boundary of the blur model: 'reflect', 'zero', 'circular' or 'valid'.
      tau: primal step > 0; None derives it from the operator-norm bound (module docstring).
      sigma: dual step > 0; None derives it so that ``tau sigma L^2 = 0.99``.
      bounds: (lo, hi) box the solution is projected on, or None for no constraint.

    Returns:
      The restored image, the shape of ``image``, in its float dtype (float32, or float64 for a float64
      image under x64, as scikit-image; see ``jdeblur.restore.arguments``).
    """
    image, kernel = prepare_problem(image, kernel)
    num_iter = check_num_iter(num_iter)
    check_choice(boundary, "boundary", BOUNDARIES)
    check_positive(lam, "lam", allow_zero=True)
    for name, step in (("tau", tau), ("sigma", sigma)):
        if step is not None:
            check_positive(step, name)
    if bounds is not None:
        lo, hi = (float(b) for b in bounds)
        if not lo < hi:
            raise ValueError(f"bounds: expected (lo, hi) with lo < hi or None, got {bounds!r}")
        bounds = (lo, hi)
    dtype = image.dtype
    steps = tuple(None if s is None else jnp.asarray(s, dtype) for s in (tau, sigma))
    return _tv_deconvolution(
        image, kernel, jnp.asarray(lam, dtype), *steps, num_iter=num_iter, boundary=boundary, bounds=bounds
    )


def _default_steps(kernel, boundary, tau, sigma):
    repeats = 2.0 if boundary == "reflect" else 1.0
    kernel_l1 = jnp.max(jnp.sum(jnp.abs(kernel), axis=(-2, -1)))
    norm_squared = repeats * kernel_l1**2 + 8.0
    if tau is None and sigma is None:
        tau = _STEP_SAFETY * jnp.sqrt(_STEP_RATIO / norm_squared)
        sigma = _STEP_SAFETY / jnp.sqrt(_STEP_RATIO * norm_squared)
    elif tau is None:
        tau = _STEP_SAFETY / (norm_squared * sigma)
    elif sigma is None:
        sigma = _STEP_SAFETY / (norm_squared * tau)
    return tau, sigma


@functools.partial(jax.jit, static_argnames=("num_iter", "boundary", "bounds"))
def _tv_deconvolution(image, kernel, lam, tau, sigma, *, num_iter, boundary, bounds):
    tau, sigma = _default_steps(kernel, boundary, tau, sigma)
    project_box = (lambda x: x) if bounds is None else (lambda x: jnp.clip(x, *bounds))

    def iteration(_, state):
        x, x_bar, dual_data, dual_rows, dual_cols = state
        # Dual ascent. Data term F(z) = |z - y|^2 / 2: prox of sigma F* is (q - sigma y) / (1 + sigma).
        dual_data = (dual_data + sigma * (blur(x_bar, kernel, boundary=boundary) - image)) / (1 + sigma)
        # TV term lam |g|_{2,1}: prox of its conjugate projects each pixel's pair on the lam-ball.
        g_rows, g_cols = gradient(x_bar)
        dual_rows, dual_cols = dual_rows + sigma * g_rows, dual_cols + sigma * g_cols
        norm = jnp.sqrt(dual_rows**2 + dual_cols**2)
        scale = lam / jnp.maximum(jnp.maximum(norm, lam), jnp.finfo(norm.dtype).tiny)
        dual_rows, dual_cols = dual_rows * scale, dual_cols * scale
        # Primal descent along -K^T (q, p) = -(H^T q - div p), then the box constraint.
        step = blur_adjoint(dual_data, kernel, boundary=boundary) - divergence(dual_rows, dual_cols)
        x_new = project_box(x - tau * step)
        return x_new, 2 * x_new - x, dual_data, dual_rows, dual_cols

    kh, kw = kernel.shape[-2:]
    # Where the blur centres each output pixel within its (kh, kw) window (ndimage convention).
    before, after = (kh - 1 - kh // 2, kw - 1 - kw // 2), (kh // 2, kw // 2)
    if boundary == "valid":
        pad = [(0, 0)] * (image.ndim - 3) + [(before[0], after[0]), (before[1], after[1]), (0, 0)]
        estimate = jnp.pad(image, pad, mode="symmetric")
    else:
        estimate = image
    zeros = jnp.zeros_like(estimate)
    state = (estimate, estimate, jnp.zeros_like(image), zeros, zeros)
    estimate = jax.lax.fori_loop(0, num_iter, iteration, state)[0]
    if boundary == "valid":
        height, width = image.shape[-3:-1]
        estimate = estimate[..., before[0] : before[0] + height, before[1] : before[1] + width, :]
    return estimate
