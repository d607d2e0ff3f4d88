"""Tiled application of an image-to-image function: overlapping tiles, cross-faded seams.

Arrays are NHWC (images float32 in [0, 1], or still in their storage dtype such as uint8), held on
the host; only one batch of tiles is on the device at a time, so device memory is bounded by the
tile size, not the image size. The output is accumulated in one float32 array.

Exactness. Tiles overlap by at least ``overlap`` pixels. In each overlap, a tile's weight is zero
over its outer ``margin = (overlap - blend) // 2`` pixels, then rises to one along a raised-cosine
ramp ``blend`` pixels long, while its neighbour's falls; weights are normalised to sum to one.
So every output pixel comes from tile pixels at least ``margin`` away from an inner tile edge
(image edges are not faded: the full image has the same border there). When the function's
receptive-field radius is at most ``margin`` and tile offsets are multiples of the network's
stride (``multiple``), the tiled result equals the untiled one up to float rounding. Functions
with global statistics (global pooling, GroupNorm, NAFNet's SCA with or without TLC) cannot be
tiled exactly: each tile sees its own statistics; the cross-fade then hides the seams.
"""
import math

import numpy as np

from jdeblur.checks import check_rank


def tile_for_budget(max_pixels: int, *, size_multiple: int = 1) -> int:
    """The largest square tile side, a multiple of ``size_multiple``, with side**2 <= ``max_pixels``."""
    side = math.isqrt(int(max_pixels)) // size_multiple * size_multiple
    if side <= 0:
        raise ValueError(
            f"max_pixels: expected at least size_multiple**2 = {size_multiple ** 2} pixels, got {max_pixels}"
        )
    return side


def tile_starts(length: int, tile: int, overlap: int, *, multiple: int = 1) -> list[int]:
    """Offsets of tiles of size ``tile`` covering [0, length), neighbours overlapping by >= ``overlap``.

    Offsets are multiples of ``multiple`` (``length`` and ``tile`` must be); the last tile ends at
    ``length``, so it may overlap its neighbour by more.
    """
    if tile >= length:
        return [0]
    step = (tile - overlap) // multiple * multiple
    if step <= 0:
        raise ValueError(
            f"overlap: expected less than the tile ({tile}) minus the size multiple ({multiple}), got {overlap}"
        )
    return list(range(0, length - tile, step)) + [length - tile]


def seam_weights(tile: int, *, fade_start: bool, fade_end: bool, overlap: int, blend: int) -> np.ndarray:
    """Per-pixel weights of a tile along one axis: zero margin, raised-cosine ramp, one in the middle.

    ``fade_start``/``fade_end`` say whether the tile has a neighbour on that side.
    """
    margin = (overlap - blend) // 2
    distance = np.arange(tile, dtype=np.float64)

    def ramp(dist):
        if blend == 0:
            return (dist >= margin).astype(np.float64)
        t = np.clip((dist - margin + 0.5) / blend, 0.0, 1.0)
        return np.sin(0.5 * np.pi * t) ** 2

    weights = np.ones(tile)
    if fade_start:
        weights *= ramp(distance)
    if fade_end:
        weights *= ramp(tile - 1 - distance)
    return weights


def _axis_plan(length, tile, overlap, blend, multiple):
    """Tile offsets along an axis, each one's weights, and their sum at every pixel (the normaliser)."""
    starts = tile_starts(length, tile, overlap, multiple=multiple)
    weights = [seam_weights(tile, fade_start=i > 0, fade_end=i < len(starts) - 1, overlap=overlap, blend=blend)
               for i in range(len(starts))]
    total = np.zeros(length)
    for start, w in zip(starts, weights):
        total[start:start + tile] += w
    return starts, weights, total


def apply_tiled(fn, x, *, tile, overlap: int, blend: int | None = None, multiple: int = 1,
                batch_size: int = 1) -> np.ndarray:
    """Applies ``fn`` to overlapping tiles of ``x`` and cross-fades the results into one image.

    Args:
      fn: maps a (B, th, tw, C) batch of tiles (x's dtype) to a (B, th, tw, C') array; it is always
        called with the same B (the last batch is padded by repeating a tile), so a jitted ``fn``
        compiles once per tile shape.
      x: (N, H, W, C) array, H and W multiples of ``multiple``; tiles from all N images are batched together.
      tile: tile side, int or (th, tw); clipped to the image, rounded down to a multiple of ``multiple``.
      overlap: minimum overlap of neighbouring tiles, in pixels.
      blend: cross-fade length inside each overlap (default overlap // 2); the rest of the overlap
        is the ``(overlap - blend) // 2`` margin discarded at each inner tile edge.
      multiple: the function's stride; tile offsets are multiples of it.
      batch_size: tiles per call to ``fn``.

    Returns:
      (N, H, W, C') float32 numpy array.
    """
    check_rank(x, "x", (4,), "NHWC images")
    x = np.asarray(x)
    n, height, width, _ = x.shape
    if height % multiple or width % multiple:
        raise ValueError(f"x: expected height and width multiples of {multiple}, got shape {x.shape}")
    blend = overlap // 2 if blend is None else blend
    if not 0 <= blend <= overlap:
        raise ValueError(f"blend: expected 0 <= blend <= overlap ({overlap}), got {blend}")
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    tile_h, tile_w = (min(t, size) // multiple * multiple for t, size in ((tile_h, height), (tile_w, width)))
    if tile_h <= 0 or tile_w <= 0:
        raise ValueError(f"tile: expected at least the size multiple {multiple}, got {tile}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")

    row_starts, row_weights, row_total = _axis_plan(height, tile_h, overlap, blend, multiple)
    col_starts, col_weights, col_total = _axis_plan(width, tile_w, overlap, blend, multiple)
    jobs = [(image, i, j) for image in range(n) for i in range(len(row_starts)) for j in range(len(col_starts))]
    batch_size = min(batch_size, len(jobs))
    out = None

    def accumulate(batch, results):
        nonlocal out
        results = np.asarray(results, np.float32)
        if out is None:
            out = np.zeros((n, height, width, results.shape[-1]), np.float32)
        for (image, i, j), result in zip(batch, results):
            weight = np.outer(row_weights[i], col_weights[j]).astype(np.float32)[..., None]
            out[image, row_starts[i]:row_starts[i] + tile_h, col_starts[j]:col_starts[j] + tile_w] += weight * result

    pending = None
    for first in range(0, len(jobs), batch_size):
        batch = jobs[first:first + batch_size]
        padded = batch + [batch[-1]] * (batch_size - len(batch))
        tiles = np.stack([x[image, row_starts[i]:row_starts[i] + tile_h, col_starts[j]:col_starts[j] + tile_w]
                          for image, i, j in padded])
        results = fn(tiles)  # a jitted fn returns at once: the host blends the previous batch meanwhile
        if pending is not None:
            accumulate(*pending)
        pending = (batch, results)
    accumulate(*pending)
    # Every tile's weight is a row profile times a column profile over a grid of tiles, so the
    # normaliser is the product of the per-axis sums: no full-size weight image is needed.
    out /= row_total.astype(np.float32)[:, None, None]
    out /= col_total.astype(np.float32)[None, :, None]
    return out
