"""Full-image restoration: any size, any batch, tiled within a memory budget, optional self-ensemble.

The model sees NHWC float32 RGB in [0, 1]. ``restore`` accepts what photos come as: HW (grayscale),
HWC or NHWC with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels; float in [0, 1], uint8
or uint16; or a list of such images of different sizes (restored one by one). Gray is replicated to
RGB and the output's channels averaged back; alpha is passed through untouched; the output has the
input's shape and dtype. Images are padded at the bottom/right to the model's ``size_multiple``
and cropped back: reflected by default, or with zeros as the official NAFNet does inside its
forward pass (``pad='zero'``, for parity with its published numbers). Images over the pixel
budget are cut into overlapping tiles (``jdeblur.tiling``; exact when the margin covers the
receptive field, never for global pooling).

Compilation: the per-tile function is jitted once per tile shape (and ensemble flag). Pass
parameters as leaves of a ``jax.tree_util.Partial`` (``model_apply_fn`` does), not captured in a
closure: captured parameters are baked into the program as constants, and every new closure
recompiles.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.checks import check_choice, check_finite, check_rank
from jdeblur.models.registry import model_inputs
from jdeblur.tiling import apply_tiled, tile_for_budget

# Each kept pixel sees >= 16 px of context across a seam (the radius of a 31-px motion kernel), and
# a 32-px cross-fade: margin = (64 - 32) // 2.
DEFAULT_OVERLAP = 64

_INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_COLOR_CHANNELS = {1: 1, 2: 1, 3: 3, 4: 3}  # channels in the image -> colour channels (the rest is alpha)
PAD_MODES = {"reflect": "reflect", "zero": "constant"}  # restore's pad -> numpy's mode


def model_apply_fn(module, params, **observations) -> jax.tree_util.Partial:
    """``x -> module.apply({'params': params}, x, **observations)`` as a pytree whose leaves are the
    parameters (and the observations the model takes besides the image: a non-blind model's
    ``kernel``, shared by every tile, and ``noise_sigma``, which a model trained on them, e.g. the
    two-stage blind one, may be given too)."""
    missing = [name for name in model_inputs(module)[1:] if observations.get(name) is None]
    if missing:
        raise ValueError(f"{type(module).__name__} is a non-blind model: it needs the {' and the '.join(missing)} "
                         "of the blurred image")
    given = {name: jnp.asarray(observations[name], jnp.float32)
             for name in model_inputs(module, training=True)[1:] if observations.get(name) is not None}
    return jax.tree_util.Partial(module.apply, {"params": params}, **given)


def self_ensemble(apply_fn, x):
    """Mean of ``apply_fn`` over the 8 flips and 90-degree rotations of NHWC ``x``, each undone after.

    Rotations swap H and W, so both must suit the model (square tiles or multiples of its stride).
    """
    total = jnp.zeros(x.shape, jnp.float32)
    for turns in range(4):
        for flip in (False, True):
            t = jnp.rot90(x, turns, axes=(1, 2))
            t = t[:, :, ::-1] if flip else t
            y = apply_fn(t).astype(jnp.float32)
            y = y[:, :, ::-1] if flip else y
            total = total + jnp.rot90(y, -turns, axes=(1, 2))
    return total / 8.0


@functools.partial(jax.jit, static_argnames="ensemble")
def _apply_tiles(apply_fn, tiles, ensemble):
    """Tiles as stored (uint8/uint16/float32, 1 or 3 channels) -> restored float32 tiles, same channels.

    Converting on the device keeps the host copy of the image in its own dtype (a quarter of
    float32 for 8-bit photos) and sends fewer bytes per tile.
    """
    x = tiles.astype(jnp.float32) / _INTEGER_SCALES.get(np.dtype(tiles.dtype), 1.0)
    gray = x.shape[-1] == 1
    x = jnp.repeat(x, 3, axis=-1) if gray else x
    y = self_ensemble(apply_fn, x) if ensemble else apply_fn(x).astype(jnp.float32)
    return jnp.mean(y, axis=-1, keepdims=True) if gray else y


def restore(apply_fn, images, *, size_multiple: int = 1, tile=None, max_pixels: int | None = None,
            overlap: int = DEFAULT_OVERLAP, blend: int | None = None, batch_size: int | None = None,
            ensemble: bool = False, clip: bool = True, pad: str = "reflect"):
    """Restores images of any size with ``apply_fn`` (NHWC float32 RGB in [0, 1] -> same shape).

    Args:
      apply_fn: the model as a function; a ``jax.tree_util.Partial`` carrying the parameters
        (``model_apply_fn``) compiles once per tile shape.
      images: HW, HWC or NHWC array (see module docstring), or a list of them.
      size_multiple: height and width the model needs a multiple of (``module.size_multiple``).
      tile: tile side (int or (h, w)); None derives it from ``max_pixels`` (untiled if no budget).
      max_pixels: pixels per model call (tiles x tile area): the device memory budget. An image
        (padded) within it is restored whole.
      overlap, blend: tile overlap and cross-fade length, see ``jdeblur.tiling.apply_tiled``.
      batch_size: tiles (or whole images) per call; default: as many as ``max_pixels`` allows,
        else all images when untiled, one tile when tiled.
      ensemble: average over the 8 flips/rotations (x8 compute).
      clip: clip float outputs to [0, 1] (integer outputs always are).
      pad: how images are padded to ``size_multiple``: 'reflect' or 'zero' (see module doc).

    Returns:
      The restored image(s): a numpy array of the input's shape and dtype (a list for a list).
    """
    if isinstance(images, (list, tuple)):
        return [restore(apply_fn, image, size_multiple=size_multiple, tile=tile, max_pixels=max_pixels,
                        overlap=overlap, blend=blend, batch_size=batch_size, ensemble=ensemble, clip=clip,
                        pad=pad)
                for image in images]
    check_choice(pad, "pad", PAD_MODES)
    color, alpha, layout = _split_image(images)
    n, height, width, _ = color.shape
    pad_h, pad_w = -height % size_multiple, -width % size_multiple
    padded = np.pad(color, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=PAD_MODES[pad])
    full = (height + pad_h, width + pad_w)
    if tile is None:
        fits = max_pixels is None or full[0] * full[1] <= max_pixels
        tile = full if fits else tile_for_budget(max_pixels, size_multiple=size_multiple)
    tile_area = min(_pair(tile)[0], full[0]) * min(_pair(tile)[1], full[1])
    if batch_size is None:
        if max_pixels is not None:
            batch_size = max(1, max_pixels // tile_area)
        else:
            batch_size = n if tile_area == full[0] * full[1] else 1
    if not isinstance(apply_fn, jax.tree_util.Partial):
        apply_fn = jax.tree_util.Partial(apply_fn)
    restored = apply_tiled(lambda tiles: _apply_tiles(apply_fn, tiles, ensemble), padded, tile=tile,
                           overlap=overlap, blend=blend, multiple=size_multiple, batch_size=batch_size)
    del padded
    return _merge_image(restored[:, :height, :width], alpha, layout, clip=clip)


def restore_with_model(module, params, images, *, kernel=None, noise_sigma=None, **kw):
    """``restore`` with a Flax module and its parameters (its ``size_multiple`` is used).

    A non-blind model (``jdeblur.models.registry.model_inputs``) also needs the image's blur
    ``kernel`` (kh, kw) and ``noise_sigma``; self-ensembling (which would rotate the image but not
    its kernel) is refused for it.
    """
    if kernel is not None and kw.get("ensemble"):
        raise ValueError("ensemble: the self-ensemble rotates the image but not its kernel; it is for blind models")
    apply_fn = model_apply_fn(module, params, kernel=kernel, noise_sigma=noise_sigma)
    return restore(apply_fn, images, size_multiple=module.size_multiple, **kw)


def _pair(tile):
    return (tile, tile) if isinstance(tile, int) else tuple(tile)


def _split_image(images):
    """NHWC colour channels (1 or 3, in the input's dtype; float32 for floats), alpha, and the layout."""
    array = np.asarray(images)
    check_rank(array, "images", (2, 3, 4), "HW, HWC or NHWC")
    layout = (array.ndim, array.shape[-1] if array.ndim > 2 else 1, array.dtype)
    array = array[None, ..., None] if array.ndim == 2 else array[None] if array.ndim == 3 else array
    channels = array.shape[-1]
    if channels not in _COLOR_CHANNELS:
        raise ValueError(f"images: expected 1, 2, 3 or 4 channels (gray, gray+alpha, RGB, RGBA), got {channels}")
    if np.issubdtype(array.dtype, np.floating):
        check_finite(array, "images")
    elif array.dtype not in _INTEGER_SCALES:
        raise ValueError(f"images: expected a float, uint8 or uint16 dtype, got {array.dtype}")
    color = _COLOR_CHANNELS[channels]
    values = array[..., :color]
    if np.issubdtype(array.dtype, np.floating):
        values = values.astype(np.float32, copy=False)
    return values, array[..., color:], layout


def _merge_image(color, alpha, layout, *, clip: bool):
    """Inverse of ``_split_image`` on the restored float32 colour (modified in place): back to the
    input's channels, dtype and rank."""
    ndim, _, dtype = layout
    if dtype in _INTEGER_SCALES:
        np.clip(color, 0.0, 1.0, out=color)
        color *= _INTEGER_SCALES[dtype]
        np.round(color, out=color)
    elif clip:
        np.clip(color, 0.0, 1.0, out=color)
    color = color.astype(dtype, copy=False)
    out = np.concatenate([color, alpha], axis=-1) if alpha.shape[-1] else color
    if ndim == 2:
        return out[0, ..., 0]
    return out[0] if ndim == 3 else out
