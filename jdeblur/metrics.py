"""Image quality metrics: PSNR, SSIM and MS-SSIM, differentiable, jittable and vmappable.

Images are NHWC (or HWC) float32 in [0, 1]. A batch gives one value per image (shape ``(N,)``),
a single HWC image gives a scalar.

The pinned convention (docs/conventions.md): PSNR with data range 1; SSIM of Wang et al. 2004 exactly as
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)`` computes it: Gaussian window of
sigma 1.5 truncated at 3.5 sigma (11 taps), K1 0.01, K2 0.03, population covariance, the
5-pixel border where the window leaves the image dropped before averaging, channels averaged.

The options papers use are keyword arguments of every metric, applied in this order:
``quantize`` (clip to [0, 1] and round to the 256 levels of uint8, as evaluating saved PNGs
does; zero gradient, so evaluation only), ``crop_border`` (drop N pixels on each side) and
``y_channel`` (BT.601 luma of ``rgb_to_y``, as BasicSR's ``test_y_channel``). ``ssim`` has one
more, ``volume``: the SSIM that MATLAB's ``ssim`` computes on an RGB array, which NAFNet's and
Restormer's published tables use (one 11x11x11 Gaussian window over rows, columns and colour,
replicate-padded, nothing cropped). A named ``MetricConvention`` bundles the options so that every
results table can say which one it used.

Differentiation: every metric has reverse-mode derivatives (``jax.grad``, ``vjp``, ``jacrev``),
which is what losses need. SSIM and MS-SSIM have no forward mode: ``jax.jvp`` and ``jax.jacfwd``
raise ``TypeError`` ("can't apply forward-mode autodiff (jvp) to a custom_vjp function"), because
their Gaussian filter carries a custom VJP (its adjoint is the same filter, which compiles several
times faster than the transposed slices autodiff would build). Use ``jax.jacrev`` for Jacobians.
PSNR has both modes.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jdeblur.checks import check_choice, check_finite, check_integer, check_positive, check_rank

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage's choice for gaussian_weights=True
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, rounded as scipy.ndimage does
SSIM_WINDOW = 2 * SSIM_RADIUS + 1  # 11 taps
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# Wang, Simoncelli & Bovik 2003, "Multiscale structural similarity for image quality assessment".
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# PSNR of identical images would be +inf (log of a zero MSE). Flooring the MSE at
# 1e-10 * data_range**2 caps PSNR at 100 dB, keeps dataset means finite, and gives a zero
# (not NaN) gradient there; above the floor the value is exact.
PSNR_MSE_FLOOR = 1e-10
# BT.601 luma with the studio-swing offset, as MATLAB's rgb2ycbcr and BasicSR's to_y_channel:
# Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in [0, 1]; Y is not rounded.
_LUMA_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_LUMA_OFFSET = 16.0 / 255.0
# On CPU the SSIM statistics are computed a strip of rows at a time (about this many elements
# of filtered maps), so that the working set stays in cache and no large temporary is allocated
# per call: several times faster on 1280x720 images.
_CPU_STRIP_ELEMENTS = 2**20


def _gaussian_taps() -> tuple[float, ...]:
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
    taps = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    # Python floats: weakly typed, so float32 images stay float32 under x64.
    return tuple(float(t) for t in taps / taps.sum())


_TAPS = _gaussian_taps()


class MetricConvention(NamedTuple):
    """How images are prepared before scoring; ``name`` is what a results table prints."""

    name: str
    quantize: bool = False
    y_channel: bool = False
    crop_border: int = 0
    volume: bool = False  # ssim's option; psnr has no window

    @property
    def options(self) -> dict:
        """The keyword arguments for ``psnr`` and ``ms_ssim``."""
        return dict(quantize=self.quantize, y_channel=self.y_channel, crop_border=self.crop_border)

    @property
    def ssim_options(self) -> dict:
        """The keyword arguments for ``ssim``."""
        return dict(self.options, volume=self.volume)


CONVENTIONS = {
    # The pinned one: float images, RGB, whole frame.
    "default": MetricConvention("default"),
    # Scores of 8-bit outputs, as from saved PNGs or BasicSR's tensor2img (NAFNet's GoPro PSNR).
    "uint8": MetricConvention("uint8", quantize=True),
    # BasicSR's calculate_psnr / calculate_ssim with test_y_channel=True, crop_border=0, on
    # uint8 images (basicsr/metrics/psnr_ssim.py): Y of the rounded RGB, not itself rounded;
    # BasicSR's SSIM crops [5:-5] after an 11-tap sigma-1.5 filter, i.e. the pinned SSIM on Y.
    # Equal to BasicSR given BGR arrays, as its cv2-based pipeline gives them (tensor2img converts
    # to BGR); given RGB arrays its to_y_channel weighs R and B the wrong way round.
    "basicsr_y": MetricConvention("basicsr_y", quantize=True, y_channel=True),
    # NAFNet's published tables (GoPro, SIDD): its BasicSR fork's calculate_psnr / calculate_ssim
    # with crop_border=0 and test_y_channel=False (options/test/GoPro/*.yml) on tensor2img's
    # uint8 images. Its calculate_ssim defaults to ssim3d=True: ``_ssim_3d``, one 3-D Gaussian
    # window over (H, W, colour), replicate-padded, nothing cropped (basicsr/metrics/psnr_ssim.py).
    "nafnet": MetricConvention("nafnet", quantize=True, volume=True),
    # Restormer's GoPro/HIDE tables (Motion_Deblurring/evaluate_gopro_hide.m): MATLAB's psnr and
    # ssim of the saved 8-bit RGB PNGs. MATLAB's ssim treats an HxWx3 array as a volume unless
    # told otherwise: the same computation as NAFNet's _ssim_3d, which was written to match it.
    "restormer": MetricConvention("restormer", quantize=True, volume=True),
}


def get_convention(convention) -> MetricConvention:
    """Returns ``convention`` itself or the entry of ``CONVENTIONS`` it names."""
    if isinstance(convention, MetricConvention):
        return convention
    check_choice(convention, "convention", CONVENTIONS)
    return CONVENTIONS[convention]


def rgb_to_y(image, *, data_range: float = 1.0):
    """BT.601 luma of an RGB image (last axis), as MATLAB's rgb2ycbcr; keeps a channel axis of 1."""
    if np.shape(image)[-1:] != (3,):
        raise ValueError(f"image: expected 3 RGB channels on the last axis, got shape {np.shape(image)}")
    # An elementwise sum, not a matmul: accelerators may run matmuls in reduced precision.
    luma = sum(weight * image[..., i:i + 1] for i, weight in enumerate(_LUMA_WEIGHTS))
    return luma + _LUMA_OFFSET * data_range


def check_image_pair(pred, target) -> None:
    """Raises ValueError unless ``pred`` and ``target`` are finite float HWC/NHWC images of one shape."""
    for name, image in (("pred", pred), ("target", target)):
        check_rank(image, name, (3, 4), "HWC or NHWC image")
        if not jnp.issubdtype(jnp.result_type(image), jnp.floating):
            raise ValueError(f"{name}: expected a floating image in [0, 1], got dtype {jnp.result_type(image)}")
    if np.shape(pred) != np.shape(target):
        raise ValueError(f"target: expected the shape of pred {np.shape(pred)}, got {np.shape(target)}")
    check_finite(pred, "pred")
    check_finite(target, "target")


def _check_options(pred, target, *, data_range, y_channel, crop_border, min_size, metric):
    """Checks the pair and the options before any tracing, so errors name the argument."""
    check_image_pair(pred, target)
    check_positive(data_range, "data_range")
    check_integer(crop_border, "crop_border", 0)
    height, width, channels = np.shape(pred)[-3:]
    if y_channel and channels != 3:
        raise ValueError(f"pred: y_channel=True needs 3 RGB channels, got shape {np.shape(pred)}")
    if min(height, width) - 2 * crop_border < min_size:
        raise ValueError(
            f"pred: {metric} needs images of at least {min_size}x{min_size} pixels after "
            f"crop_border={crop_border}, got shape {np.shape(pred)}"
        )


def _apply_options(pred, target, data_range, *, quantize, y_channel, crop_border):
    """Applies the convention options; returns NHWC arrays and whether the input was one image."""
    single = pred.ndim == 3
    x, y = (a[None] if single else a for a in (pred, target))
    height, width = x.shape[1:3]
    if quantize:
        x, y = (jnp.round(jnp.clip(a / data_range, 0.0, 1.0) * 255.0) / 255.0 * data_range for a in (x, y))
    if crop_border:
        x, y = (a[:, crop_border:height - crop_border, crop_border:width - crop_border] for a in (x, y))
    if y_channel:
        x, y = (rgb_to_y(a, data_range=data_range) for a in (x, y))
    return x, y, single


def _unbatch(values, single):
    return values[0] if single else values


# The public metrics check their arguments, then call a jitted core: an evaluation loop calling
# them eagerly compiles once per shape instead of dispatching every operation, and inside a
# caller's jit the core is simply inlined.
_jit_with_static_options = functools.partial(jax.jit, static_argnames=("quantize", "y_channel", "crop_border"))


def psnr(pred, target, *, data_range: float = 1.0, quantize: bool = False, y_channel: bool = False,
         crop_border: int = 0):
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``, capped at 100 dB.

    Returns:
      One value per image: shape ``(N,)`` for NHWC, a scalar for HWC.
    """
    _check_options(pred, target, data_range=data_range, y_channel=y_channel, crop_border=crop_border,
                   min_size=1, metric="psnr")
    return _psnr(pred, target, data_range, quantize=quantize, y_channel=y_channel, crop_border=crop_border)


@_jit_with_static_options
def _psnr(pred, target, data_range, *, quantize, y_channel, crop_border):
    x, y, single = _apply_options(pred, target, data_range, quantize=quantize, y_channel=y_channel,
                                  crop_border=crop_border)
    mse = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
    mse = jnp.maximum(mse, PSNR_MSE_FLOOR * data_range**2)
    return _unbatch(10.0 * jnp.log10(data_range**2 / mse), single)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _filter_valid(maps, channels):
    """Separable Gaussian filter of a tuple of ``(..., H, W*C)`` maps, keeping only its 'valid' part.

    skimage filters with mode='reflect' and then crops SSIM_RADIUS pixels: no pixel it keeps
    reads a reflected one, so filtering 'valid' gives the same numbers without the padding.
    Columns of one channel are ``channels`` apart in the merged W*C axis, which keeps the
    innermost axis long and contiguous (fast) instead of C wide.

    Returns:
      The filtered maps stacked on a new leading axis.
    """
    rows = maps[0].shape[-2] - 2 * SSIM_RADIUS
    cols = maps[0].shape[-1] - 2 * SSIM_RADIUS * channels
    # Filtering the rows of each map before stacking lets XLA fuse the products that make a
    # map (x * y, ...) into its row pass instead of writing them out first: 2x faster on CPU.
    stacked = jnp.stack([sum(tap * m[..., k:k + rows, :] for k, tap in enumerate(_TAPS)) for m in maps])
    return sum(tap * stacked[..., k * channels:k * channels + cols] for k, tap in enumerate(_TAPS))


def _filter_valid_forward(maps, channels):
    return _filter_valid(maps, channels), None


def _filter_valid_backward(channels, _, cotangent):
    # The adjoint of a 'valid' correlation with a symmetric kernel is the same filter of the
    # zero-padded cotangent. Autodiff would transpose each of the 22 slices into a pad and an
    # add: several times the compile time and memory traffic. (A custom VJP rules out
    # forward-mode differentiation of SSIM; reverse mode is what losses need.)
    margin = 2 * SSIM_RADIUS
    padding = [(0, 0)] * (cotangent.ndim - 2) + [(margin, margin), (margin * channels, margin * channels)]
    padded = jnp.pad(cotangent, padding)
    return (tuple(_filter_valid(tuple(padded), channels)),)


_filter_valid.defvjp(_filter_valid_forward, _filter_valid_backward)


def _ssim_maps(x, y, channels, c1, c2):
    """SSIM and contrast-structure maps of ``(N, H, W*C)`` images, each ``(N, H-10, (W-10)*C)``."""
    # Only the sum of the variances enters SSIM: four filtered maps instead of five.
    mx, my, mean_sq, mxy = _filter_valid((x, y, x * x + y * y, x * y), channels)
    luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2.0 * (mxy - mx * my) + c2) / (mean_sq - mx * mx - my * my + c2)
    return luminance * cs, cs


def _rows_per_strip(batch, row_elements, out_rows):
    # A speed heuristic only: accelerators prefer one large fused pass.
    if jax.default_backend() != "cpu":
        return out_rows
    return int(np.clip(_CPU_STRIP_ELEMENTS // (4 * batch * row_elements), 1, out_rows))


def _ssim_and_cs(x, y, data_range):
    """Mean SSIM and mean contrast-structure term per image and channel, each shape ``(N, C)``."""
    batch, height, width, channels = x.shape
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    out_rows, out_cols = height - 2 * SSIM_RADIUS, width - 2 * SSIM_RADIUS
    x = x.reshape(batch, height, width * channels)
    y = y.reshape(batch, height, width * channels)
    strip = _rows_per_strip(batch, width * channels, out_rows)

    def channel_sums(*maps):
        # Rows first, along the long contiguous axis: XLA:CPU reduces a (..., W, C) layout slowly.
        return tuple(m.sum(axis=1).reshape(batch, out_cols, channels).sum(axis=1) for m in maps)

    def strip_sums(start, first_new_row):
        xs = lax.dynamic_slice_in_dim(x, start, strip + 2 * SSIM_RADIUS, axis=1)
        ys = lax.dynamic_slice_in_dim(y, start, strip + 2 * SSIM_RADIUS, axis=1)
        # The last strip is shifted up to stay inside the image; drop the rows counted before.
        fresh = (start + jnp.arange(strip) >= first_new_row)[None, :, None]
        return channel_sums(*(jnp.where(fresh, m, 0.0) for m in _ssim_maps(xs, ys, channels, c1, c2)))

    if strip == out_rows:
        ssim_sum, cs_sum = channel_sums(*_ssim_maps(x, y, channels, c1, c2))
    else:
        first_rows = jnp.arange(-(-out_rows // strip)) * strip
        starts = jnp.minimum(first_rows, out_rows - strip)
        ssim_sum, cs_sum = (s.sum(axis=0) for s in lax.map(lambda a: strip_sums(*a), (starts, first_rows)))
    pixels = out_rows * out_cols
    return ssim_sum / pixels, cs_sum / pixels


def ssim(pred, target, *, data_range: float = 1.0, quantize: bool = False, y_channel: bool = False,
         crop_border: int = 0, volume: bool = False):
    """Structural similarity in the pinned convention (equal to scikit-image's, see module doc).

    Reverse-mode differentiable only (``jax.jvp`` raises ``TypeError``; see the module docstring),
    except with ``volume=True``, whose filter is plain JAX.

    Args:
      volume: instead, SSIM with one 11x11x11 Gaussian window (sigma 1.5) over rows, columns and
        channels, the images replicate-padded by 5 on every side of all three axes and the whole
        map averaged: MATLAB's ``ssim`` on an HxWx3 array (its default, 'SSS' data format), and
        NAFNet's ``_ssim_3d``. Not the mean of per-channel SSIMs.

    Returns:
      One value per image, channels averaged: shape ``(N,)`` for NHWC, a scalar for HWC.
    """
    _check_options(pred, target, data_range=data_range, y_channel=y_channel, crop_border=crop_border,
                   min_size=1 if volume else SSIM_WINDOW, metric="ssim")
    return _ssim(pred, target, data_range, quantize=quantize, y_channel=y_channel, crop_border=crop_border,
                 volume=volume)


@functools.partial(jax.jit, static_argnames=("quantize", "y_channel", "crop_border", "volume"))
def _ssim(pred, target, data_range, *, quantize, y_channel, crop_border, volume):
    x, y, single = _apply_options(pred, target, data_range, quantize=quantize, y_channel=y_channel,
                                  crop_border=crop_border)
    if volume:
        return _unbatch(_ssim_volume(x, y, data_range), single)
    per_channel, _ = _ssim_and_cs(x, y, data_range)
    return _unbatch(per_channel.mean(axis=-1), single)


def _ssim_volume(x, y, data_range):
    """Mean SSIM per image with a 3-D Gaussian window over (H, W, C), replicate-padded, uncropped."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    maps = jnp.stack([x, y, x * x + y * y, x * y])
    for axis in (2, 3, 4):  # the window is separable: one 11-tap pass per axis
        size = maps.shape[axis]
        padding = [(0, 0)] * maps.ndim
        padding[axis] = (SSIM_RADIUS, SSIM_RADIUS)
        padded = jnp.pad(maps, padding, mode="edge")
        maps = sum(tap * lax.slice_in_dim(padded, k, k + size, axis=axis) for k, tap in enumerate(_TAPS))
    mx, my, mean_sq, mxy = maps
    ssim_map = ((2.0 * mx * my + c1) * (2.0 * (mxy - mx * my) + c2)
                / ((mx * mx + my * my + c1) * (mean_sq - mx * mx - my * my + c2)))
    return ssim_map.mean(axis=(1, 2, 3))


def _downsample(x):
    """2x2 average pooling; an odd height or width first repeats its last row or column."""
    _, height, width, _ = x.shape
    # tf.image.ssim_multiscale pads odd sizes at the end in 'SYMMETRIC' mode (= edge for 1 pixel).
    x = jnp.pad(x, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    batch, height, width, channels = x.shape
    return x.reshape(batch, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))


def _relu_power(base, exponent):
    """``max(base, 0) ** exponent`` with a zero gradient, not NaN, where ``base <= 0``."""
    positive = base > 0
    safe_base = jnp.where(positive, base, 1.0)
    return jnp.where(positive, safe_base**exponent, 0.0)


def ms_ssim(pred, target, *, weights=MS_SSIM_WEIGHTS, data_range: float = 1.0, quantize: bool = False,
            y_channel: bool = False, crop_border: int = 0):
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) in the conventions of tf.image.ssim_multiscale.

    One scale per weight: the pinned SSIM statistics at full size, then after each 2x2 average
    pooling (odd sizes padded by repeating the edge). The contrast-structure means of all scales
    but the last and the SSIM of the last are raised to their weights and multiplied, per
    channel; channels are averaged. Negative terms are clipped to 0 first (TF and pytorch-msssim
    apply relu), so anti-correlated images score 0 with a zero gradient rather than NaN.
    The weights are used as given (not renormalised), as TF does. Reverse-mode differentiable only,
    as ``ssim``.

    Returns:
      One value per image: shape ``(N,)`` for NHWC, a scalar for HWC.

    Raises:
      ValueError: if a side is shorter than ``(SSIM_WINDOW - 1) * 2**(len(weights) - 1) + 1``
        pixels (161 for 5 scales), the size where the coarsest scale still holds one window.
    """
    weights = tuple(float(w) for w in weights)
    if not weights:
        raise ValueError("weights: expected at least one scale weight, got ()")
    min_size = (SSIM_WINDOW - 1) * 2 ** (len(weights) - 1) + 1
    _check_options(pred, target, data_range=data_range, y_channel=y_channel, crop_border=crop_border,
                   min_size=min_size, metric=f"ms_ssim with {len(weights)} scales")
    return _ms_ssim(pred, target, data_range, weights=weights, quantize=quantize, y_channel=y_channel,
                    crop_border=crop_border)


@functools.partial(jax.jit, static_argnames=("weights", "quantize", "y_channel", "crop_border"))
def _ms_ssim(pred, target, data_range, *, weights, quantize, y_channel, crop_border):
    x, y, single = _apply_options(pred, target, data_range, quantize=quantize, y_channel=y_channel,
                                  crop_border=crop_border)
    value = 1.0
    for scale, weight in enumerate(weights):
        if scale:
            x, y = _downsample(x), _downsample(y)
        ssim_per_channel, cs_per_channel = _ssim_and_cs(x, y, data_range)
        term = ssim_per_channel if scale == len(weights) - 1 else cs_per_channel
        value = value * _relu_power(term, weight)
    return _unbatch(value.mean(axis=-1), single)


def score(pred, target, convention="default") -> dict:
    """PSNR and SSIM under a named convention (a ``CONVENTIONS`` key or a ``MetricConvention``).

    Returns:
      ``{'psnr': ..., 'ssim': ...}``, each one value per image.
    """
    convention = get_convention(convention)
    return {"psnr": psnr(pred, target, **convention.options), "ssim": ssim(pred, target, **convention.ssim_options)}
