"""Random blur kernels from a mixture of families, configured by an ``ml_collections.ConfigDict``.

``sample_kernel(key, cfg)`` draws a family with probabilities proportional to ``cfg.weights``,
then its parameters uniformly from the ranges of ``cfg.<family>``, and returns the kernel with
the family's index in ``FAMILIES``. It is what the train step calls for every image of a batch
(``sample_kernels``, or ``jax.vmap`` over keys), with ``cfg`` closed over as a static value.
Under ``vmap`` the ``lax.switch`` over families evaluates every configured family for every key
and selects, so each family sampler is kept cheap. Kernels follow ``jdeblur.physics.kernels``
(float32, non-negative, sum to 1, centre pixel ``size // 2``); images elsewhere in the package
are NHWC (or HWC) float32 in [0, 1].
"""
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jdeblur.checks import check_choice
from jdeblur.errors import UserError
from jdeblur.physics import kernels, trajectories

FIELD = "config.degrade.blur"  # where an experiment holds this config; errors name fields under it
FAMILIES: tuple[str, ...] = ("gaussian", "disk", "box", "linear_motion", "camera_shake", "gp_motion")

# Range fields of each family, and an upper bound (as a function of the kernel size) where a
# larger value would not fit the window. Angles may be negative; every other range is >= 0.
_RANGES = {
    "gaussian": {"sigma": None, "angle": None},
    "disk": {"radius": lambda size: size / 2},
    "box": {"width": lambda size: size, "height": lambda size: size},
    "linear_motion": {"length": lambda size: size, "angle": None},
    "camera_shake": {"max_length": None, "anxiety": None, "exposure": lambda size: 1.0,
                     "centripetal": None, "gaussian_shake": None, "prob_big_shake": lambda size: 1.0},
    "gp_motion": {"sigma": None},
}
_ANGLE_FIELDS = ("angle",)


def default_blur_config() -> ml_collections.ConfigDict:
    """The default kernel mixture: every field a plain Python value, ranges as ``(low, high)``.

    Fields:
      size: kernel side in pixels (int >= 3; odd is the norm).
      families: names (from ``FAMILIES``) the sampler draws from.
      weights: relative probabilities of ``families``, same length, >= 0, not all 0. Default
        favours motion, the blur of hand-held photos (GoPro, RealBlur), and keeps Gaussian,
        defocus and box blur for robustness.
      gaussian.sigma: standard deviation range in pixels; one draw per axis if anisotropic.
      gaussian.anisotropic: draw ``sigma_x`` and ``sigma_y`` independently, and a rotation.
      gaussian.angle: rotation range in degrees (used if anisotropic).
      disk.radius: defocus disk radius range in pixels (high <= size / 2).
      box.width, box.height: box side ranges in pixels (high <= size).
      linear_motion.length: segment length range in pixels (high <= size, so it fits at any angle).
      linear_motion.angle: direction range in degrees, counter-clockwise.
      camera_shake.max_length: path length range, in canvas pixels (kernel pixels when canvas is
        None); DeblurGAN: 60.
      camera_shake.canvas: None, or an int: the side of the canvas the path is simulated on,
        mapped onto the kernel (DeblurGAN: 64, whose 60-px paths then shrink by size / 64).
        None (default) simulates in kernel pixels, so blur sizes are DeblurGAN's at the image's
        own resolution; paths too large for the window are shrunk to fit.
      camera_shake.anxiety: shake amount range (DeblurGAN picks from 0.001 to 0.01).
      camera_shake.exposure: fraction of the path exposed, in [0, 1] (DeblurGAN: 1/10, 1/2, 1).
      camera_shake.centripetal, camera_shake.gaussian_shake, camera_shake.prob_big_shake: ranges of
        Boracchi & Foi's per-path parameters (their draws: [0, 0.7], [0, 10], [0, 0.2]).
      camera_shake.num_samples: int, samples per path; the shake rates are rescaled to match
        the 2000-sample reference, fewer samples is a cheaper scan with the same statistics.
      gp_motion.sigma: GP standard deviation range, in kernel half-widths (deepinv: 0.25).
      gp_motion.length_scale: float, Matérn length scale on t in [0, 1] (deepinv: 0.3); fixed
        because its covariance square root is precomputed once.
      gp_motion.nu: float, Matérn smoothness, 1.5 (Schuler et al.) or 2.5.
      gp_motion.num_samples: int, points per GP path.
    """
    cfg = ml_collections.ConfigDict()
    cfg.size = 31
    cfg.families = FAMILIES
    cfg.weights = (1.0, 0.5, 0.25, 1.0, 2.0, 1.0)
    cfg.gaussian = ml_collections.ConfigDict({"sigma": (0.5, 3.0), "anisotropic": True, "angle": (0.0, 180.0)})
    cfg.disk = ml_collections.ConfigDict({"radius": (1.0, 6.0)})
    cfg.box = ml_collections.ConfigDict({"width": (1.0, 9.0), "height": (1.0, 9.0)})
    cfg.linear_motion = ml_collections.ConfigDict({"length": (3.0, 25.0), "angle": (0.0, 180.0)})
    cfg.camera_shake = ml_collections.ConfigDict({
        "max_length": (20.0, 60.0),
        "canvas": None,
        "anxiety": (0.001, 0.01),
        "exposure": (0.5, 1.0),
        "centripetal": (0.0, trajectories.MAX_CENTRIPETAL),
        "gaussian_shake": (0.0, trajectories.MAX_GAUSSIAN_SHAKE),
        "prob_big_shake": (0.0, trajectories.MAX_PROB_BIG_SHAKE),
        "num_samples": 256,
    })
    cfg.gp_motion = ml_collections.ConfigDict({"sigma": (0.15, 0.35), "length_scale": 0.3, "nu": 1.5,
                                               "num_samples": 256})
    return cfg


def _check_range(value, name: str, *, signed: bool, upper=None) -> None:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok:
        raise UserError(f"{name}: expected a range (low, high) of two finite numbers, got {value!r}")
    low, high = value
    if low > high:
        raise UserError(f"{name}: expected low <= high, got {value!r}")
    if not signed and low < 0:
        raise UserError(f"{name}: expected a range of values >= 0, got {value!r}")
    if upper is not None and high > upper:
        raise UserError(f"{name}: expected high <= {upper:g} (the kernel window), got {value!r}")


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name}: expected an int >= {minimum}, got {value!r}")


def validate_blur_config(cfg: ml_collections.ConfigDict) -> None:
    """Raises UserError, naming the field (``config.degrade.blur.*``), unless ``cfg`` is a valid mixture."""
    _check_int(cfg.get("size"), f"{FIELD}.size", 3)
    size = cfg.size
    families = tuple(cfg.get("families") or ())
    if not families:
        raise UserError(f"{FIELD}.families: expected a non-empty tuple of names from {FAMILIES}, got {families!r}")
    for name in families:
        check_choice(name, f"{FIELD}.families", FAMILIES)
    if len(set(families)) != len(families):
        raise UserError(f"{FIELD}.families: expected distinct names, got {families!r}")
    weights = tuple(cfg.get("weights") or ())
    if len(weights) != len(families):
        raise UserError(f"{FIELD}.weights: expected {len(families)} weights, one per family {families}, got {weights!r}")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"{FIELD}.weights: expected finite values >= 0, not all 0, got {weights!r}")
    for name in families:
        family_cfg = cfg.get(name)
        if family_cfg is None:
            raise UserError(f"{FIELD}.{name}: the config has no sub-dict for family {name!r}")
        for field, bound in _RANGES[name].items():
            upper = bound(size) if bound is not None else None
            _check_range(family_cfg.get(field), f"{FIELD}.{name}.{field}", signed=field in _ANGLE_FIELDS, upper=upper)
    if "camera_shake" in families:
        _check_int(cfg.camera_shake.get("num_samples"), f"{FIELD}.camera_shake.num_samples", 2)
        if cfg.camera_shake.get("canvas") is not None:
            _check_int(cfg.camera_shake.canvas, f"{FIELD}.camera_shake.canvas", 1)
    if "gp_motion" in families:
        _check_int(cfg.gp_motion.get("num_samples"), f"{FIELD}.gp_motion.num_samples", 2)
        check_choice(cfg.gp_motion.get("nu"), f"{FIELD}.gp_motion.nu", (1.5, 2.5))
        length_scale = cfg.gp_motion.get("length_scale")
        if not isinstance(length_scale, (int, float)) or not length_scale > 0:
            raise UserError(f"{FIELD}.gp_motion.length_scale: expected a number > 0, got {length_scale!r}")


def _in_range(u, value_range):
    """Maps a U[0, 1) draw onto a (low, high) range."""
    low, high = value_range
    return low + (high - low) * u


# Each family sampler takes ``params``, seven U[0, 1) draws for its parameters, and
# ``path_uniforms``, a (rows, 4) block of U[0, 1) draws for its path. sample_kernel draws them all
# in one call: every random call under jit compiles its own threefry (about 1.5 s of CPU each on
# the 2-core test machine), and the switch would otherwise hold four of them.


def _gaussian(params, path_uniforms, size, fc):
    del path_uniforms
    if fc.anisotropic:
        sigma = _in_range(params[:2], fc.sigma)
        return kernels.gaussian_kernel(size, sigma=sigma, angle=_in_range(params[2], fc.angle))
    return kernels.gaussian_kernel(size, sigma=_in_range(params[0], fc.sigma))


def _disk(params, path_uniforms, size, fc):
    del path_uniforms
    return kernels.disk_kernel(size, radius=_in_range(params[0], fc.radius))


def _box(params, path_uniforms, size, fc):
    del path_uniforms
    return kernels.box_kernel(size, width=_in_range(params[0], fc.width), height=_in_range(params[1], fc.height))


def _linear_motion(params, path_uniforms, size, fc):
    del path_uniforms
    return kernels.linear_motion_kernel(size, length=_in_range(params[0], fc.length),
                                        angle=_in_range(params[1], fc.angle))


def _camera_shake(params, path_uniforms, size, fc):
    path = trajectories.camera_shake_path(
        path_uniforms[: fc.num_samples], max_length=_in_range(params[0], fc.max_length),
        anxiety=_in_range(params[1], fc.anxiety), centripetal=_in_range(params[2], fc.centripetal),
        gaussian_shake=_in_range(params[3], fc.gaussian_shake), prob_big_shake=_in_range(params[4], fc.prob_big_shake))
    return trajectories.rasterize_camera_shake(path, size, canvas=fc.canvas, exposure=_in_range(params[5], fc.exposure))


def _gp_motion(params, path_uniforms, size, fc):
    normals = trajectories.normals_from_uniforms(path_uniforms[: fc.num_samples, :2])
    path = trajectories.gp_path(normals, sigma=_in_range(params[0], fc.sigma), length_scale=fc.length_scale, nu=fc.nu)
    return trajectories.rasterize_gp_path(path, size)


_SAMPLERS = {"gaussian": _gaussian, "disk": _disk, "box": _box, "linear_motion": _linear_motion,
             "camera_shake": _camera_shake, "gp_motion": _gp_motion}
# Rows of 4 draws each family's path needs.
_PATH_ROWS = {"camera_shake": lambda cfg: cfg.camera_shake.num_samples,
              "gp_motion": lambda cfg: cfg.gp_motion.num_samples}


def sample_kernel(key, cfg: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """Draws one kernel from the mixture ``cfg`` (validated first; static under jit).

    Returns:
      ``(kernel, family_id)``: float32 ``(cfg.size, cfg.size)`` and int32 index into ``FAMILIES``.
    """
    validate_blur_config(cfg)
    # Families of weight 0 can never be drawn: leave them out of the switch altogether.
    names = [name for name, w in zip(cfg.families, cfg.weights) if w > 0]
    weights = np.array([w for w in cfg.weights if w > 0], np.float64)
    path_rows = max([_PATH_ROWS[name](cfg) for name in names if name in _PATH_ROWS], default=0)
    # One draw: rows 0 and 1 for the family and its parameters, the rest for a path.
    uniforms = jax.random.uniform(key, (2 + path_rows, 4))
    selector, params = uniforms[0, 0], jnp.concatenate([uniforms[0, 1:], uniforms[1]])
    # Inverse CDF: the family is the number of cumulative-probability edges at or below selector.
    edges = jnp.asarray(np.cumsum(weights)[:-1] / weights.sum(), jnp.float32)
    choice = jnp.sum(selector >= edges).astype(jnp.int32)
    branches = [functools.partial(_SAMPLERS[name], size=cfg.size, fc=cfg[name]) for name in names]
    kernel = jax.lax.switch(choice, branches, params, uniforms[2:])
    family_ids = jnp.asarray([FAMILIES.index(name) for name in names], jnp.int32)
    return kernel, family_ids[choice]


def sample_kernels(key, n: int, cfg: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """Draws ``n`` independent kernels: ``(kernels (n, size, size) float32, family_ids (n,) int32)``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a static int >= 1, got {n!r}")
    validate_blur_config(cfg)
    return jax.vmap(lambda k: sample_kernel(k, cfg))(jax.random.split(key, n))
