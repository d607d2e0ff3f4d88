"""The forward model y = H x + n for a batch: per-image random kernels, then per-image noise.

Images are NHWC float32 in [0, 1]. ``degrade`` is what the train step calls on the device: it is
pure, jittable with the config held static (closed over, or a ``FrozenConfigDict`` passed as a
static argument), and needs no vmap for a batch.

Random streams: the key is split by ``jax.random.fold_in`` into named sub-streams with fixed ids,
so adding a stream later never changes the others, and one key always gives one degradation:

- ``fold_in(key, KERNEL_STREAM)`` draws the kernels (``kernel_mixture.sample_kernels``);
- ``fold_in(key, NOISE_STREAM)`` is split again into ``fold_in(., 0)`` for the per-image noise
  levels (within it ``fold_in(., 0)`` for sigma, ``fold_in(., 1)`` for the peak) and
  ``fold_in(., 1)`` for the noise itself.

Boundaries: with ``'valid'`` (the default, for training) the input is a sharp patch carrying a
margin of ``size // 2`` pixels on every side, and ``y`` is smaller than ``x`` by ``size - 1``
rows and columns (exactly the patch for an odd size);
the sharp target that matches ``y`` pixel for pixel is ``sharp_target(x, cfg)``, i.e.
``crop_valid(x, size)`` (a centre crop of ``size // 2`` for odd sizes). With ``'reflect'`` or
``'circular'`` (full images), ``y`` has the shape of ``x`` and the target is ``x`` itself.

Gradients with respect to ``x`` flow through the blur and additive noise, through Poisson noise
and 8-bit rounding as the identity (their mean; see ``noise``), and not through clipped pixels.
"""
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jdeblur.checks import check_choice, check_rank
from jdeblur.errors import UserError, one_line
from jdeblur.physics import kernel_mixture
from jdeblur.physics.noise import (
    gaussian_noise,
    poisson_gaussian_noise,
    poisson_noise,
    quantize_8bit,
    sample_noise_levels,
)
from jdeblur.physics.operators import BOUNDARIES, METHODS, blur, crop_valid

KERNEL_STREAM = 0
NOISE_STREAM = 1
# The train step draws synthetic sharp images (config.data.dead_leaves) from the same per-image
# key, by fold_in with this id: a stream of its own, so switching them on changes no degradation.
SHARP_STREAM = 2

NOISE_KINDS = ("none", "gaussian", "poisson", "poisson_gaussian")
# Poisson noise has no single sigma: its variance x / peak grows with intensity. The sigma
# reported for it is the one at this intensity (mid-grey).
EFFECTIVE_SIGMA_INTENSITY = 0.5


class Degradation(NamedTuple):
    """One degraded batch and what produced it.

    Attributes:
      y: the observations (B, H', W', C); H' = H - size + 1 for a 'valid' boundary, else H.
      kernel: the per-image blur kernels (B, size, size) float32.
      noise_sigma: per-image noise standard deviation (B,) float32; for Poisson kinds the
        effective one at intensity ``EFFECTIVE_SIGMA_INTENSITY``, ``sqrt(0.5 / peak + sigma**2)``;
        8-bit rounding is not counted.
      family: per-image blur family (B,) int32, an index into ``kernel_mixture.FAMILIES``.
    """

    y: jax.Array
    kernel: jax.Array
    noise_sigma: jax.Array
    family: jax.Array


def default_degrade_config() -> ml_collections.ConfigDict:
    """The default degradation: the kernel mixture, a 'valid' blur, mild Gaussian noise."""
    cfg = ml_collections.ConfigDict()
    cfg.blur = kernel_mixture.default_blur_config()
    # 'valid' for margin-padded training patches; 'reflect' or 'circular' for full images.
    cfg.boundary = "valid"
    cfg.method = "auto"  # blur method: 'auto', 'spatial' or 'fft'
    cfg.noise = ml_collections.ConfigDict()
    cfg.noise.kind = "gaussian"  # one of NOISE_KINDS
    # Per-image ranges [low, high], drawn uniformly (log-uniformly when the flag is set).
    # sigma up to 0.03 (about 8/255) is sensor noise of a well-lit photo; peaks of 30-1000
    # photons per white pixel span low light to daylight.
    cfg.noise.sigma = (0.0, 0.03)
    cfg.noise.sigma_log_uniform = False  # draw sigma log-uniformly (then low > 0)
    cfg.noise.peak = (30.0, 1000.0)  # photons per white pixel, for the Poisson kinds
    cfg.noise.peak_log_uniform = True  # draw the peak log-uniformly
    cfg.noise.quantize = False  # round y to 8 bits (after clipping), as a saved photo is
    cfg.clip = True  # clip y to [0, 1], as a sensor saturates
    return cfg


def degrade(key, x, cfg):
    """Blurs each image with its own random kernel and adds noise: ``(y, kernel, noise_sigma)``.

    See ``degrade_with_info`` (which also returns each image's blur family).
    """
    degradation = degrade_with_info(key, x, cfg)
    return degradation.y, degradation.kernel, degradation.noise_sigma


def degrade_with_info(key, x, cfg) -> Degradation:
    """Degrades a batch of sharp images: per-image kernel, blur, per-image noise, clip, quantize.

    Args:
      key: a JAX random key; the same key gives the same degradation.
      x: sharp batch (B, H, W, C); for a 'valid' boundary H, W >= ``cfg.blur.size``.
      cfg: a config like ``default_degrade_config()``.

    Returns:
      A ``Degradation`` (y, kernel, noise_sigma, family).
    """
    check_rank(x, "x", (4,), "a batch (B, H, W, C)")
    _check_fields(cfg)
    if cfg.boundary == "valid" and min(x.shape[1:3]) < cfg.blur.size:
        raise ValueError(
            f"x: a 'valid' degradation needs images at least config.degrade.blur.size = "
            f"{cfg.blur.size} on each side, got shape {tuple(x.shape)}"
        )
    frozen = cfg if isinstance(cfg, ml_collections.FrozenConfigDict) else _freeze(cfg)
    return _degrade(key, x, frozen)


def sharp_target(x, cfg):
    """The part of the sharp batch ``x`` that ``degrade(key, x, cfg)``'s ``y`` is aligned with."""
    return crop_valid(x, cfg.blur.size) if cfg.boundary == "valid" else x


def _freeze(cfg):
    # From a plain-dict copy: a FrozenConfigDict made from a live ConfigDict shares its nested
    # dicts, so its hash and equality (the jit cache key) would follow later edits of ``cfg``.
    return ml_collections.FrozenConfigDict(cfg.to_dict())


# Jitted once per shape and config, so that an eager call does not dispatch the kernel sampler's
# vmapped operations one by one; inside a jitted train step this is inlined.
@functools.partial(jax.jit, static_argnums=2)
def _degrade(key, x, cfg) -> Degradation:
    kernel, family = kernel_mixture.sample_kernels(
        jax.random.fold_in(key, KERNEL_STREAM), x.shape[0], cfg.blur
    )
    blurred = blur(x, kernel, boundary=cfg.boundary, method=cfg.method)
    y, noise_sigma = _add_noise(jax.random.fold_in(key, NOISE_STREAM), blurred, cfg.noise)
    if cfg.clip:
        y = jnp.clip(y, 0, 1)
    if cfg.noise.quantize:
        y = quantize_8bit(y, straight_through=True)
    return Degradation(y=y, kernel=kernel, noise_sigma=noise_sigma, family=family)


def valid_margin(cfg) -> int:
    """Rows and columns of context on each side of a patch that ``cfg``'s blur consumes: the
    margin a training patch carries for a 'valid' boundary, 0 for the others."""
    return cfg.blur.size // 2 if cfg.boundary == "valid" else 0


def check_degrade_config(cfg, *, patch_size: int) -> None:
    """Raises UserError, naming the field, unless ``config.degrade`` degrades training patches.

    Checks the fields, then traces ``degrade`` on one patch of ``patch_size`` (plus the 'valid'
    margin) with ``jax.eval_shape``: the kernel samplers and the noise see their settings, and
    nothing is computed.
    """
    _check_fields(cfg)
    side = patch_size + 2 * valid_margin(cfg)
    patch = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    try:
        jax.eval_shape(lambda x: degrade(jax.random.key(0), x, cfg), patch)
    except UserError:
        raise
    except (ValueError, TypeError) as e:
        raise UserError(f"config.degrade: {one_line(e)}") from e


def _check_fields(cfg):
    """Raises UserError, naming the field, for a degradation config that cannot apply."""
    check_choice(cfg.boundary, "config.degrade.boundary", BOUNDARIES)
    check_choice(cfg.method, "config.degrade.method", METHODS)
    check_choice(cfg.noise.kind, "config.degrade.noise.kind", NOISE_KINDS)
    kernel_mixture.validate_blur_config(cfg.blur)
    if cfg.noise.kind in ("gaussian", "poisson_gaussian"):
        _check_range(cfg.noise.sigma, "config.degrade.noise.sigma", positive=cfg.noise.sigma_log_uniform)
    if cfg.noise.kind in ("poisson", "poisson_gaussian"):
        _check_range(cfg.noise.peak, "config.degrade.noise.peak", positive=True)


def _check_range(value, name, *, positive):
    try:
        low, high = (float(v) for v in value)
        ok = (0 < low if positive else 0 <= low) and low <= high < math.inf
    except (TypeError, ValueError):  # not a pair of numbers
        ok = False
    if not ok:
        bound = "0 < low" if positive else "0 <= low"
        raise UserError(
            f"{name}: expected a range (low, high) with {bound} <= high, got {value!r}"
        )


def _add_noise(key, x, noise_cfg):
    """Draws per-image noise levels and adds the noise; returns (noisy x, per-image sigma)."""
    batch = x.shape[0]
    levels_key, sample_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)

    def draw(index, bounds, log_uniform):
        low, high = bounds
        return sample_noise_levels(
            jax.random.fold_in(levels_key, index), batch, low=low, high=high,
            log_uniform=log_uniform,
        )

    kind = noise_cfg.kind
    if kind == "none":
        return x, jnp.zeros((batch,), jnp.float32)
    if kind == "gaussian":
        sigma = draw(0, noise_cfg.sigma, noise_cfg.sigma_log_uniform)
        return gaussian_noise(sample_key, x, sigma), sigma
    peak = draw(1, noise_cfg.peak, noise_cfg.peak_log_uniform)
    shot_variance = EFFECTIVE_SIGMA_INTENSITY / peak
    if kind == "poisson":
        return poisson_noise(sample_key, x, peak=peak), jnp.sqrt(shot_variance)
    sigma = draw(0, noise_cfg.sigma, noise_cfg.sigma_log_uniform)
    noisy = poisson_gaussian_noise(sample_key, x, peak=peak, sigma=sigma)
    return noisy, jnp.sqrt(shot_variance + sigma**2)
