"""Random motion trajectories and their rasterisation to blur kernels.

Two generators of random camera motion, both pure JAX (jittable, vmappable over keys):

- camera shake after Boracchi & Foi 2012, "Modeling the performance of image restoration from
  motion blur" (IEEE TIP 21(8)), the generator DeblurGAN uses: a particle whose velocity is
  perturbed at each sample by Gaussian noise, pulled back towards the start (centripetal
  term) and, rarely, reversed (a big shake); its speed is renormalised at each sample so the
  full path always has length ``max_length``;
- Gaussian-process paths after Schuler et al. 2015 ("Learning to deblur", TPAMI 2016) as
  deepinv's ``MotionBlurGenerator`` makes them: x(t) and y(t) independent zero-mean GPs with a
  Matérn covariance (length scale 0.3, sigma 0.25) on t in [0, 1].

Each has a key-taking generator and a variant from given draws (``camera_shake_path``,
``gp_path``) for callers that draw all their randomness at once. A trajectory is an ``(n, 2)``
array of points ``(x, y)`` in pixels (x along columns, y along rows);
``rasterize_trajectory`` turns one into a kernel with the conventions of
``jdeblur.physics.kernels`` (float32, non-negative, sums to 1, centre pixel ``size // 2``).
Images elsewhere in the package are NHWC (or HWC) float32 in [0, 1].
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.checks import check_choice, check_positive, check_rank
from jdeblur.physics.kernels import check_kernel_size, fit_radius, normalize_kernel, pixel_offsets

# DeblurGAN's (and Boracchi & Foi's) number of samples per trajectory. The per-sample rates of
# the shake model are defined for it; other sample counts rescale them (see camera_shake_trajectory).
REFERENCE_SAMPLES = 2000
# Upper ends of the uniform draws of Boracchi & Foi's per-trajectory parameters.
MAX_CENTRIPETAL = 0.7
MAX_GAUSSIAN_SHAKE = 10.0
MAX_PROB_BIG_SHAKE = 0.2


def rasterize_trajectory(points: jax.Array, size: int, *, weights=None) -> jax.Array:
    """Splats a trajectory bilinearly onto a ``(size, size)`` kernel, centred and fitted to it.

    The points are shifted so that their weighted centre of mass falls on the centre pixel
    (sub-pixel: bilinear weights preserve the centre of mass exactly, so blurring with the kernel
    does not shift the image), then shrunk about it, if needed, until every weighted point lies
    within ``(size - 1) // 2`` pixels of the centre, so nothing is cut off.

    Args:
      points: ``(n, 2)`` positions ``(x, y)`` in pixels; any origin.
      size: kernel side (static int).
      weights: optional ``(n,)`` non-negative exposure weights (default: all 1); points with
        weight 0 neither count for the centre nor for the fit.

    Returns:
      float32 ``(size, size)`` kernel.
    """
    check_kernel_size(size)
    check_rank(points, "points", (2,), "(n, 2) points (x, y)")
    if points.shape[-1] != 2:
        raise ValueError(f"points: expected shape (n, 2), got {tuple(points.shape)}")
    points = jnp.asarray(points, jnp.float32)
    weights = jnp.ones(points.shape[:1], jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
    check_positive(weights, "weights", allow_zero=True)
    centred = points - jnp.sum(weights[:, None] * points, axis=0) / jnp.sum(weights)
    extent = jnp.max(jnp.where(weights[:, None] > 0, jnp.abs(centred), 0.0))
    radius = fit_radius(size)
    centred = centred * jnp.where(extent > radius, radius / jnp.maximum(extent, 1e-12), 1.0)
    # Tent (bilinear) weights of every point on every column and row; the kernel is their
    # weighted outer product summed over points, one small matmul (deterministic, unlike a
    # scatter-add with atomics on GPU).
    offsets = pixel_offsets(size)
    tent_x = jnp.maximum(0.0, 1.0 - jnp.abs(centred[:, 0:1] - offsets))
    tent_y = jnp.maximum(0.0, 1.0 - jnp.abs(centred[:, 1:2] - offsets))
    kernel = jnp.einsum("ti,tj->ij", tent_y * weights[:, None], tent_x, precision=jax.lax.Precision.HIGHEST)
    return normalize_kernel(kernel)


def _check_num_samples(num_samples) -> None:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples: expected a static int >= 2, got {num_samples!r}")


def normals_from_uniforms(uniforms: jax.Array) -> jax.Array:
    """Box-Muller: pairs of independent U[0, 1) draws ``(..., 2)`` to independent N(0, 1) pairs."""
    radius = jnp.sqrt(-2.0 * jnp.log1p(-uniforms[..., 0]))
    angle = 2 * jnp.pi * uniforms[..., 1]
    return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)


def camera_shake_trajectory(key, num_samples: int = REFERENCE_SAMPLES, *, max_length=60.0, anxiety=0.005,
                            centripetal=None, gaussian_shake=None, prob_big_shake=None) -> jax.Array:
    """Random camera-shake path of Boracchi & Foi 2012 (DeblurGAN's ``Trajectory``).

    At each sample the velocity ``v`` (of norm ``max_length / (num_samples - 1)``) receives
    ``anxiety * (gaussian_shake * N(0, I) - centripetal * x) * |v|`` and, with probability
    ``prob_big_shake * anxiety``, an impulse ``2 v exp(i (pi + U(-0.5, 0.5)))`` that reverses
    it; then it is renormalised and the particle moves by it. The rates are those of the
    reference 2000-sample generator; with fewer samples each step stands for
    ``rho = 1999 / (num_samples - 1)`` reference steps, so the noise is scaled by ``sqrt(rho)``
    and the drift and the big-shake probability by ``rho`` (same statistics, shorter scan; the
    initial velocity has the step's norm rather than DeblurGAN's ``anxiety``, a first-step detail).

    Args:
      key: PRNG key.
      num_samples: points on the path (static int >= 2).
      max_length: path length in canvas pixels (every path has exactly this length).
      anxiety: amount of shake (DeblurGAN's ``expl``; 0 gives a straight line).
      centripetal, gaussian_shake, prob_big_shake: per-path parameters; ``None`` draws them
        uniformly from [0, 0.7], [0, 10] and [0, 0.2] as Boracchi & Foi and DeblurGAN do.

    Returns:
      float32 ``(num_samples, 2)`` positions ``(x, y)``, starting at the origin.
    """
    _check_num_samples(num_samples)
    # Checked before the draw too, so that a bad call fails before compiling anything.
    check_positive(max_length, "max_length", allow_zero=True)
    check_positive(anxiety, "anxiety", allow_zero=True)
    return camera_shake_path(jax.random.uniform(key, (num_samples, 4)), max_length=max_length, anxiety=anxiety,
                             centripetal=centripetal, gaussian_shake=gaussian_shake, prob_big_shake=prob_big_shake)


def camera_shake_path(uniforms: jax.Array, *, max_length=60.0, anxiety=0.005, centripetal=None,
                      gaussian_shake=None, prob_big_shake=None) -> jax.Array:
    """``camera_shake_trajectory`` from given U[0, 1) draws, ``(num_samples, 4)``.

    Row 0 holds the per-path draws (initial direction and the ``None`` parameters), rows 1..
    the draws of each step. For callers that draw all the randomness of a kernel at once: each
    random call under jit compiles its own threefry, which dominates the compile time here.
    """
    check_rank(uniforms, "uniforms", (2,), "(num_samples, 4) uniform draws")
    if uniforms.shape[0] < 2 or uniforms.shape[1] != 4:
        raise ValueError(f"uniforms: expected shape (num_samples >= 2, 4), got {tuple(uniforms.shape)}")
    check_positive(max_length, "max_length", allow_zero=True)
    check_positive(anxiety, "anxiety", allow_zero=True)

    def drawn(value, u, maximum, name):
        if value is None:
            return maximum * u
        check_positive(value, name, allow_zero=True)
        return jnp.asarray(value, jnp.float32)

    centripetal = drawn(centripetal, uniforms[0, 1], MAX_CENTRIPETAL, "centripetal")
    gaussian_shake = drawn(gaussian_shake, uniforms[0, 2], MAX_GAUSSIAN_SHAKE, "gaussian_shake")
    prob_big_shake = drawn(prob_big_shake, uniforms[0, 3], MAX_PROB_BIG_SHAKE, "prob_big_shake")
    num_samples = uniforms.shape[0]
    rho = (REFERENCE_SAMPLES - 1) / (num_samples - 1)
    step = jnp.asarray(max_length, jnp.float32) / (num_samples - 1)
    per_step = uniforms[1:]
    normals = normals_from_uniforms(per_step[:, :2])
    noise = jax.lax.complex(normals[:, 0], normals[:, 1])
    big_shake = per_step[:, 2] < prob_big_shake * anxiety * rho
    shake_turn = jnp.exp(1j * (jnp.pi + per_step[:, 3] - 0.5))
    velocity = step * jnp.exp(2j * jnp.pi * uniforms[0, 0])
    noise_scale = anxiety * gaussian_shake * np.sqrt(rho)
    pull = anxiety * centripetal * rho

    def advance(carry, inputs):
        position, velocity = carry
        noise_t, big_shake_t, turn_t = inputs
        impulse = jnp.where(big_shake_t, 2 * velocity * turn_t, 0)
        velocity = velocity + impulse + (noise_scale * noise_t - pull * position) * step
        velocity = velocity / jnp.maximum(jnp.abs(velocity), 1e-30) * step
        position = position + velocity
        return (position, velocity), position

    origin = jnp.zeros((), jnp.complex64)
    _, path = jax.lax.scan(advance, (origin, velocity), (noise, big_shake, shake_turn))
    path = jnp.concatenate([origin[None], path])
    return jnp.stack([jnp.real(path), jnp.imag(path)], axis=-1).astype(jnp.float32)


def exposure_weights(num_samples: int, exposure) -> jax.Array:
    """Weights of the samples seen during the first ``exposure`` fraction of a path, in (0, 1].

    Samples up to ``exposure * (num_samples - 1)`` weigh 1, the next one the fractional rest
    (as DeblurGAN's partial-exposure PSFs), later ones 0; exposure 0 keeps only the first.
    """
    exposure = jnp.clip(jnp.asarray(exposure, jnp.float32), 0.0, 1.0)
    t = jnp.arange(num_samples, dtype=jnp.float32)
    return jnp.clip(exposure * (num_samples - 1) - t + 1.0, 0.0, 1.0)


def rasterize_camera_shake(path: jax.Array, size: int, *, canvas=64, exposure=1.0) -> jax.Array:
    """DeblurGAN's PSF of a shake path: the first ``exposure`` of it, its canvas mapped onto the kernel.

    With an int ``canvas`` the path (in canvas pixels) is scaled by ``size / canvas``, i.e.
    DeblurGAN's ``canvas``-pixel PSF resampled to ``size``; with ``None`` it is already in kernel
    pixels. It is weighted by ``exposure_weights``, then centred and, if too large, shrunk to fit
    by ``rasterize_trajectory``.
    """
    if canvas is not None:
        check_positive(canvas, "canvas")
        path = path * (jnp.asarray(size, jnp.float32) / canvas)
    check_positive(exposure, "exposure", allow_zero=True)
    return rasterize_trajectory(path, size, weights=exposure_weights(path.shape[0], exposure))


def camera_shake_kernel(key, size: int, *, max_length=60.0, canvas=64, anxiety=0.005, exposure=1.0,
                        centripetal=None, gaussian_shake=None, prob_big_shake=None,
                        num_samples: int = REFERENCE_SAMPLES) -> jax.Array:
    """Random camera-shake kernel: a Boracchi & Foi path, exposed for a fraction of its duration.

    Args:
      key: PRNG key.
      size: kernel side (static int).
      max_length, anxiety, centripetal, gaussian_shake, prob_big_shake, num_samples: as in
        ``camera_shake_trajectory``.
      canvas: side in pixels of the canvas the path is simulated on (DeblurGAN: 64), mapped
        onto the kernel; ``None`` simulates it in kernel pixels (see ``rasterize_camera_shake``).
      exposure: fraction of the path seen by the sensor, in [0, 1] (DeblurGAN picks 1/10, 1/2
        or 1); the kernel shows its first part.

    Returns:
      float32 ``(size, size)`` kernel.
    """
    check_kernel_size(size)
    path = camera_shake_trajectory(key, num_samples, max_length=max_length, anxiety=anxiety, centripetal=centripetal,
                                   gaussian_shake=gaussian_shake, prob_big_shake=prob_big_shake)
    return rasterize_camera_shake(path, size, canvas=canvas, exposure=exposure)


def matern_covariance(distance, *, length_scale, nu=1.5):
    """Matérn covariance with unit variance, ``nu`` 1.5 or 2.5, at ``distance >= 0`` (numpy or JAX)."""
    check_choice(nu, "nu", (1.5, 2.5))
    xp = jnp if isinstance(distance, jax.Array) else np
    if nu == 1.5:
        r = np.sqrt(3.0) * distance / length_scale
        return (1.0 + r) * xp.exp(-r)
    r = np.sqrt(5.0) * distance / length_scale
    return (1.0 + r + r**2 / 3.0) * xp.exp(-r)


@functools.lru_cache(maxsize=16)
def _matern_square_root(num_samples: int, length_scale: float, nu: float) -> np.ndarray:
    """A with A A^T = the Matérn covariance of num_samples times on [0, 1] (symmetric root, float64)."""
    t = np.linspace(0.0, 1.0, num_samples)
    covariance = matern_covariance(np.abs(t[:, None] - t[None, :]), length_scale=length_scale, nu=nu)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    # The smooth kernels are numerically rank-deficient; tiny negative eigenvalues are rounding.
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def gp_trajectory(key, num_samples: int = 256, *, sigma=0.25, length_scale=0.3, nu=1.5) -> jax.Array:
    """Gaussian-process path: x(t), y(t) independent GPs with Matérn covariance on t in [0, 1].

    Sampled exactly (a precomputed square root of the covariance matrix at the ``num_samples``
    times, so ``length_scale`` and ``nu`` are static Python floats; ``sigma`` may be traced).
    Schuler et al. 2015 and deepinv's documentation give Matérn 3/2 (``nu=1.5``, the default);
    deepinv's code evaluates the 5/2 formula, available as ``nu=2.5`` (smoother paths).

    Returns:
      float32 ``(num_samples, 2)`` points ``(x, y)`` in units of the kernel's half-width.
    """
    _check_num_samples(num_samples)
    check_choice(nu, "nu", (1.5, 2.5))  # before the draw, so that a bad call fails before compiling
    return gp_path(jax.random.normal(key, (num_samples, 2)), sigma=sigma, length_scale=length_scale, nu=nu)


def gp_path(normals: jax.Array, *, sigma=0.25, length_scale=0.3, nu=1.5) -> jax.Array:
    """``gp_trajectory`` from given independent N(0, 1) draws, ``(num_samples, 2)``."""
    check_rank(normals, "normals", (2,), "(num_samples, 2) normal draws")
    if normals.shape[0] < 2 or normals.shape[1] != 2:
        raise ValueError(f"normals: expected shape (num_samples >= 2, 2), got {tuple(normals.shape)}")
    check_positive(length_scale, "length_scale")
    check_positive(sigma, "sigma", allow_zero=True)
    root = jnp.asarray(_matern_square_root(normals.shape[0], float(length_scale), float(nu)), jnp.float32)
    return jnp.asarray(sigma, jnp.float32) * jnp.matmul(root, normals, precision=jax.lax.Precision.HIGHEST)


def rasterize_gp_path(path: jax.Array, size: int) -> jax.Array:
    """Kernel of a GP path: as deepinv, units map [-1, 1] onto the kernel (one unit = size / 2 px)."""
    return rasterize_trajectory(path * (size / 2), size)


def gp_motion_kernel(key, size: int, *, sigma=0.25, length_scale=0.3, nu=1.5, num_samples: int = 256) -> jax.Array:
    """Random motion kernel from a Gaussian-process path (Schuler et al. 2015, deepinv's generator).

    As deepinv, the path is centred and one unit is half the kernel's width; unlike deepinv,
    whose histogram drops what falls outside, a path too large for the window is shrunk to
    fit, and it is splatted bilinearly rather than binned.
    """
    check_kernel_size(size)
    return rasterize_gp_path(gp_trajectory(key, num_samples, sigma=sigma, length_scale=length_scale, nu=nu), size)
