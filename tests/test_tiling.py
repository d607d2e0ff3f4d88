"""Tests for tiled application: the tile grid, the seam weights, and exactness against untiled runs."""
import numpy as np
import pytest
from scipy import ndimage

from jdeblur.tiling import apply_tiled, seam_weights, tile_for_budget, tile_starts


def _box_filter(radius):
    """A function of receptive-field radius exactly ``radius``: zero-padded box mean (like a SAME conv)."""
    size = (1, 2 * radius + 1, 2 * radius + 1, 1)
    return lambda tiles: ndimage.uniform_filter(np.asarray(tiles, np.float64), size=size, mode="constant")


@pytest.mark.parametrize("length, tile, overlap, multiple", [(100, 32, 8, 1), (96, 40, 13, 4), (64, 16, 0, 8)])
def test_tile_starts_cover_overlap_and_align(length, tile, overlap, multiple):
    starts = tile_starts(length, tile, overlap, multiple=multiple)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(s % multiple == 0 for s in starts)
    gaps = np.diff(starts)
    assert np.all(gaps > 0) and np.all(tile - gaps >= overlap)


def test_tile_starts_single_tile_and_bad_overlap():
    assert tile_starts(30, 32, 8) == [0]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 16, 14, multiple=4)


def test_seam_weights_fade_into_each_other():
    overlap, blend, tile = 24, 8, 40
    left = seam_weights(tile, fade_start=False, fade_end=True, overlap=overlap, blend=blend)
    right = seam_weights(tile, fade_start=True, fade_end=False, overlap=overlap, blend=blend)
    margin = (overlap - blend) // 2
    # Neighbours overlapping by exactly `overlap`: the weights are a partition of unity.
    np.testing.assert_allclose(left[tile - overlap:] + right[:overlap], 1.0, atol=1e-12)
    assert np.all(right[:margin] == 0) and np.all(left[tile - margin:] == 0) and left[0] == 1
    hard = seam_weights(tile, fade_start=True, fade_end=True, overlap=8, blend=0)
    np.testing.assert_array_equal(hard, np.r_[np.zeros(4), np.ones(tile - 8), np.zeros(4)])


def test_tile_for_budget():
    assert tile_for_budget(256 * 256, size_multiple=16) == 256
    assert tile_for_budget(300 * 300, size_multiple=16) == 288
    with pytest.raises(ValueError, match="max_pixels"):
        tile_for_budget(100, size_multiple=16)


@pytest.mark.parametrize("radius, overlap, blend, exact", [(5, 20, 10, True), (6, 20, 8, True), (8, 20, 10, False)])
def test_tiled_equals_untiled_when_the_margin_covers_the_receptive_field(rng, radius, overlap, blend, exact):
    x = rng.random((2, 72, 90, 3)).astype(np.float32)
    fn = _box_filter(radius)
    tiled = apply_tiled(fn, x, tile=(32, 40), overlap=overlap, blend=blend, batch_size=5)
    error = np.abs(tiled - fn(x)).max()
    # margin (overlap - blend) // 2 is 5, 6, 5: exact iff it reaches the radius (5, 6, not 8).
    assert error < 1e-6 if exact else error > 1e-4


def test_calls_use_one_batch_shape_and_weights_normalise(rng):
    x = rng.random((3, 40, 40, 2)).astype(np.float32)
    shapes = []

    def record(tiles):
        shapes.append(tiles.shape)
        return tiles * 2.0

    out = apply_tiled(record, x, tile=24, overlap=8, batch_size=4)
    assert set(shapes) == {(4, 24, 24, 2)} and len(shapes) == 3  # 3 images x 2 x 2 tiles, last batch padded
    np.testing.assert_allclose(out, 2.0 * x, rtol=1e-6)  # weights sum to one everywhere


def test_bad_arguments_are_named():
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="x: expected height and width multiples of 8"):
        apply_tiled(lambda t: t, x[:, :30], tile=16, overlap=4, multiple=8)
    with pytest.raises(ValueError, match="blend"):
        apply_tiled(lambda t: t, x, tile=16, overlap=4, blend=6)
    with pytest.raises(ValueError, match="tile"):
        apply_tiled(lambda t: t, x, tile=4, overlap=0, multiple=8)
