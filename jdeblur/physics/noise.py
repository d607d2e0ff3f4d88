"""Noise models of the observation y = H x + n, and samplers for per-image noise levels.

Images are NHWC (or HWC) float32 in [0, 1]. A noise level (``sigma``, ``peak``) is a scalar or
one value per image, shape (B,), broadcast over the image's other axes.

The noisy values are exact samples; their gradient with respect to the clean image is that of
the noise's mean (the identity), so a degradation stays differentiable: additive Gaussian noise
is so by construction, and Poisson counts and 8-bit rounding, whose mean is (nearly) the clean
value, pass the gradient straight through.
"""
import jax
import jax.numpy as jnp

from jdeblur.checks import check_finite, check_positive, check_rank, is_concrete

_IMAGE_LAYOUT = "an image (H, W, C) or a batch (B, H, W, C)"


def gaussian_noise(key, x, sigma):
    """Adds white Gaussian noise of standard deviation ``sigma``: ``x + sigma * N(0, 1)``.

    Args:
      key: a JAX random key.
      x: image (H, W, C) or batch (B, H, W, C).
      sigma: scalar, or per-image (B,) for a batch; >= 0.
    """
    _check_image(x)
    sigma = _per_image(sigma, "sigma", x)
    dtype = jnp.result_type(x, jnp.float32)
    return x + sigma * jax.random.normal(key, jnp.shape(x), dtype)


def poisson_noise(key, x, *, peak):
    """Shot noise: Poisson photon counts of mean ``x * peak``, divided by ``peak``.

    ``peak`` is the photon count of a white pixel; the variance at intensity ``x`` is
    ``x / peak``. Negative intensities count as zero photons.

    Args:
      key: a JAX random key.
      x: image (H, W, C) or batch (B, H, W, C).
      peak: scalar, or per-image (B,) for a batch; > 0.
    """
    _check_image(x)
    peak = _per_image(peak, "peak", x, allow_zero=False)
    dtype = jnp.result_type(x, jnp.float32)
    # No gradient reaches the sampler (its derivative is taken straight through below), which
    # also lets autodiff reuse the sampler's compiled code.
    rate = jax.lax.stop_gradient(jnp.maximum(x, 0) * peak)
    counts = jax.random.poisson(key, rate, jnp.shape(x))
    return _straight_through(x, (counts / peak).astype(dtype))


def poisson_gaussian_noise(key, x, *, peak, sigma):
    """Poisson shot noise (``peak``) plus Gaussian read noise (``sigma``), independent.

    The variance at intensity ``x`` is ``x / peak + sigma ** 2``. The two draws use the
    sub-keys ``fold_in(key, 0)`` (Poisson) and ``fold_in(key, 1)`` (Gaussian).
    """
    _check_image(x)
    _per_image(sigma, "sigma", x)  # before the costly Poisson draw, whose errors come first
    shot = poisson_noise(jax.random.fold_in(key, 0), x, peak=peak)
    return gaussian_noise(jax.random.fold_in(key, 1), shot, sigma)


def quantize_8bit(x, *, straight_through: bool = False):
    """Rounds to the 256 levels of an 8-bit image, ``round(255 x) / 255``, clipped to [0, 1].

    Args:
      x: any array of intensities in [0, 1].
      straight_through: pass the gradient through the rounding unchanged (identity), instead of
        the true gradient (zero almost everywhere), for training through a quantized degradation.
    """
    quantized = jnp.round(jnp.clip(x, 0, 1) * 255) / 255
    return _straight_through(x, quantized) if straight_through else quantized


def sample_noise_levels(key, n: int, *, low, high, log_uniform: bool = False):
    """Draws ``n`` noise levels (sigmas or peaks) uniformly from [low, high].

    Args:
      key: a JAX random key.
      n: how many levels (one per image).
      low, high: the range, 0 <= low <= high (0 < low for ``log_uniform``).
      log_uniform: draw ``log(level)`` uniformly instead, so that every decade of the range is
        equally likely (the usual choice for Poisson peaks or wide sigma ranges).

    Returns:
      float32 array (n,).
    """
    check_positive(low, "low", allow_zero=not log_uniform)
    check_positive(high, "high", allow_zero=True)
    if is_concrete(low) and is_concrete(high) and low > high:
        raise ValueError(f"high: expected high >= low = {low}, got {high}")
    if log_uniform:
        return jnp.exp(jax.random.uniform(key, (n,), minval=jnp.log(low), maxval=jnp.log(high)))
    return jax.random.uniform(key, (n,), minval=low, maxval=high)


# The median absolute value of a zero-mean Gaussian is this many standard deviations.
_MAD_TO_SIGMA = 0.6744897501960817


def estimate_noise_sigma(x):
    """Estimates white Gaussian noise's standard deviation from the image itself, per image.

    Donoho's wavelet estimator (Donoho & Johnstone 1994, as in
    ``skimage.restoration.estimate_sigma``): the median absolute value of the finest diagonal
    Haar detail, ``(a - b - c + d) / 2`` over each 2x2 block, divided by 0.6745, the median of
    ``|N(0, 1)|``. That band holds little of a natural image (less still of a blurred one, whose
    fine detail the blur removed), so its values are mostly noise, and the median ignores the
    few edges that remain. Channels are averaged. Biased upwards by sharp texture and downwards
    by 8-bit rounding when the noise is below about one grey level.

    Args:
      x: image (H, W, C) or batch (B, H, W, C), H and W at least 2.

    Returns:
      float32 scalar for an image, (B,) for a batch.
    """
    _check_image(x)
    if min(jnp.shape(x)[-3:-1]) < 2:
        raise ValueError(f"x: expected at least 2x2 pixels to estimate noise, got shape {tuple(jnp.shape(x))}")
    x = jnp.asarray(x, jnp.float32)
    height, width = (s // 2 * 2 for s in x.shape[-3:-1])
    blocks = x[..., :height, :width, :]
    diagonal = (blocks[..., 0::2, 0::2, :] - blocks[..., 1::2, 0::2, :] - blocks[..., 0::2, 1::2, :]
                + blocks[..., 1::2, 1::2, :]) / 2
    flat = jnp.moveaxis(diagonal, -1, -3).reshape(*diagonal.shape[:-3], diagonal.shape[-1], -1)
    return jnp.mean(jnp.median(jnp.abs(flat), axis=-1), axis=-1) / _MAD_TO_SIGMA


def _straight_through(x, value):
    """Returns ``value`` exactly, with the derivative of ``x`` (a straight-through estimator)."""
    return _value_with_gradient_of(x, jax.lax.stop_gradient(value))


@jax.custom_jvp
def _value_with_gradient_of(x, value):
    return value


@_value_with_gradient_of.defjvp
def _value_with_gradient_of_jvp(primals, tangents):
    return primals[1], tangents[0]


def _check_image(x):
    check_rank(x, "x", (3, 4), _IMAGE_LAYOUT)
    check_finite(x, "x")


def _per_image(level, name, x, *, allow_zero=True):
    """Checks a scalar or per-image level and shapes it to broadcast against ``x``."""
    check_rank(level, name, (0, 1), "a scalar or one value per image (B,)")
    check_positive(level, name, allow_zero=allow_zero)
    level = jnp.asarray(level)
    if level.ndim == 1:
        if jnp.ndim(x) != 4 or level.shape[0] != jnp.shape(x)[0]:
            raise ValueError(
                f"{name}: per-image values {level.shape} need a batch x with as many images, "
                f"got x of shape {tuple(jnp.shape(x))}"
            )
        level = level[:, None, None, None]
    return level
