"""Tests of the random patch augmentation (uint8 HWC, same transform for every image of a pair)."""
import numpy as np
import pytest

from jdeblur.data.augment import random_patch, reflect_pad_to


def dihedral(image):
    """The 8 rotations/flips of an HWC image."""
    return [np.rot90(f, k) for f in (image, image[:, ::-1]) for k in range(4)]


def find_crop(patch, image):
    """(top, left, transform index) of ``patch`` in ``image`` up to a rotation/flip, or None.

    ``image`` holds its own row and column in channels 0 and 1, so the crop is located directly.
    """
    size = patch.shape[0]
    top, left = int(patch[..., 0].min()), int(patch[..., 1].min())
    for i, t in enumerate(dihedral(image[top:top + size, left:left + size])):
        if np.array_equal(t, patch):
            return top, left, i
    return None


def test_patch_is_a_rotated_or_flipped_crop_and_all_symmetries_occur(rng):
    rows, cols = np.mgrid[:24, :30]
    image = np.stack([rows, cols, rng.integers(0, 256, (24, 30))], axis=-1).astype(np.uint8)
    found = set()
    for seed in range(40):
        patch = random_patch({"sharp": image}, np.random.default_rng(seed), size=8)["sharp"]
        assert patch.shape == (8, 8, 3) and patch.dtype == np.uint8 and patch.flags.c_contiguous
        location = find_crop(patch, image)
        assert location is not None
        found.add(location[2])
    assert found == set(range(8))
    still = random_patch({"sharp": image}, np.random.default_rng(0), size=8, flips=False, rotations=False)["sharp"]
    assert find_crop(still, image)[2] == 0


def test_pairs_stay_aligned(rng):
    sharp = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    lookup = rng.permutation(256).astype(np.uint8)  # blurred = f(sharp) pixelwise: commutes with crops/turns
    for seed in range(10):
        out = random_patch({"blurred": lookup[sharp], "sharp": sharp}, np.random.default_rng(seed), size=16)
        np.testing.assert_array_equal(out["blurred"], lookup[out["sharp"]])
    # Resampling and jitter are not pixelwise functions: identical inputs must give identical outputs.
    out = random_patch({"blurred": sharp, "sharp": sharp.copy()}, np.random.default_rng(1), size=16,
                       scale_range=(0.6, 1.4), brightness=0.2, color=0.1)
    np.testing.assert_array_equal(out["blurred"], out["sharp"])
    with pytest.raises(ValueError, match="one shape"):
        random_patch({"blurred": sharp[:-1], "sharp": sharp}, np.random.default_rng(0), size=16)


def test_small_images_are_reflect_padded(rng):
    image = rng.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    padded = reflect_pad_to(image, 16)
    # Golden: numpy's reflect padding, split evenly (3/3 rows, 4/5 columns).
    np.testing.assert_array_equal(padded, np.pad(image, ((3, 3), (4, 5), (0, 0)), mode="reflect"))
    patch = random_patch({"sharp": image}, np.random.default_rng(3), size=16, flips=False, rotations=False)["sharp"]
    np.testing.assert_array_equal(patch, padded)


def test_rescaling_keeps_a_ramp_a_ramp_with_scaled_slope():
    ramp = np.broadcast_to(np.arange(200, dtype=np.uint8)[None, :, None], (120, 200, 3)).copy()
    for scale in (0.5, 2.0):
        patch = random_patch({"sharp": ramp}, np.random.default_rng(0), size=24, flips=False, rotations=False,
                             scale_range=(scale, scale))["sharp"].astype(float)
        # Bicubic resampling reproduces linear functions; away from the borders the slope is 1/scale.
        slope = np.diff(patch[:, 4:-4, 0], axis=1)
        assert np.allclose(slope.mean(), 1 / scale, atol=0.1), (scale, slope.mean())
        assert np.ptp(patch[:, :, 0], axis=0).max() <= 1  # rows stay equal


def test_brightness_and_color_jitter_golden(rng):
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = random_patch({"sharp": image}, np.random.default_rng(5), size=16, flips=False, rotations=False,
                       brightness=0.3, color=0.2)["sharp"]
    # Golden: recompute the draw order of random_patch (offsets, then the gains).
    draw = np.random.default_rng(5)
    draw.integers(0, 1), draw.integers(0, 1)
    expected_gains = (1 + draw.uniform(-0.3, 0.3)) * (1 + draw.uniform(-0.2, 0.2, size=3))
    assert np.ptp(expected_gains) > 1e-3  # the channels get different gains
    np.testing.assert_array_equal(out, np.clip(np.rint(image * expected_gains), 0, 255))  # float64 golden
