"""Tests of the evaluation set: fixed, saved degradations of full-size test images; real pairs."""
import numpy as np
import pytest
import scipy.ndimage

from jdeblur.data.eval_set import central_crop, make_eval_set
from jdeblur.data.pipeline import default_data_config
from jdeblur.physics.kernel_mixture import FAMILIES


def as_arrays(items):
    return [{k: np.asarray(v) for k, v in item.items()} for item in items]


def test_eval_set_is_fixed_saved_and_seeded(tmp_path, folder_config, small_degrade_config):
    degrade_cfg = small_degrade_config
    first = as_arrays(make_eval_set(folder_config, degrade_cfg, seed=0))
    assert [i["name"] for i in first] == ["test/img0.png", "test/img1.png", "test/img2.png"]
    for item in first:
        assert item["blurred"].shape == item["sharp"].shape and item["blurred"].dtype == np.float32  # full size
        assert item["kernel"].shape == (7, 7) and np.isclose(item["kernel"].sum(), 1, atol=1e-5)
        assert FAMILIES[int(item["family"])] in degrade_cfg.blur.families
        assert 0.01 <= item["noise_sigma"] <= 0.03
    saved = list((tmp_path / "data").rglob("table.npz"))
    assert len(saved) == 1
    # Read back from the saved draws, and drawn afresh elsewhere: identical either way.
    again = as_arrays(make_eval_set(folder_config, degrade_cfg, seed=0))
    fresh = as_arrays(make_eval_set(folder_config, degrade_cfg, seed=0, cache_dir=tmp_path / "elsewhere"))
    for a, b, c in zip(first, again, fresh):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])
    other = as_arrays(make_eval_set(folder_config, degrade_cfg, seed=1))
    assert not any(np.array_equal(a["kernel"], o["kernel"]) for a, o in zip(first, other))
    # A subset keeps the draws of the images it keeps.
    subset = as_arrays(make_eval_set(folder_config, degrade_cfg, seed=0, max_images=2))
    assert len(subset) == 2
    np.testing.assert_array_equal(subset[1]["kernel"], first[1]["kernel"])
    for item in first:
        # Golden: scipy's convolution with the symmetric ('reflect') extension, per channel; what is
        # left is the noise, of the saved sigma (the pixels are mid-grey, so nothing is clipped).
        blurred = np.stack([scipy.ndimage.convolve(item["sharp"][..., c].astype(np.float64), item["kernel"],
                                                   mode="reflect") for c in range(3)], axis=-1)
        residual = item["blurred"] - blurred
        assert abs(residual.mean()) < 0.1 * item["noise_sigma"] + 1e-3
        assert abs(residual.std() / item["noise_sigma"] - 1) < 0.1


def test_a_crop_is_the_photos_centre_degraded_as_a_photo_of_that_size(tmp_path, folder_config, small_degrade_config):
    whole = as_arrays(make_eval_set(folder_config, small_degrade_config, seed=0))
    cropped = as_arrays(make_eval_set(folder_config, small_degrade_config, seed=0, crop=12))
    assert len(list((tmp_path / "data").rglob("table.npz"))) == 2  # each crop saved apart
    for item, full in zip(cropped, whole):  # the photos are 20x24
        np.testing.assert_array_equal(item["sharp"], full["sharp"][4:16, 6:18])
        assert item["blurred"].shape == (12, 12, 3)
        np.testing.assert_array_equal(item["kernel"], full["kernel"])  # the image's key draws the kernel
        blurred = np.stack([scipy.ndimage.convolve(item["sharp"][..., c].astype(np.float64), item["kernel"],
                                                   mode="reflect") for c in range(3)], axis=-1)
        residual = item["blurred"] - blurred  # reflected at the crop's edges: a photo of that size
        assert abs(residual.std() / item["noise_sigma"] - 1) < 0.25
    photo = whole[0]["sharp"]
    np.testing.assert_array_equal(central_crop(photo, 22), photo[:, 1:23])  # the 20-px side kept whole
    assert central_crop(photo, None) is photo
    with pytest.raises(ValueError, match="crop: expected an integer >= 1, got 0"):
        make_eval_set(folder_config, small_degrade_config, seed=0, crop=0)


def test_eval_set_of_pairs_is_the_pairs(tmp_path, write_image):
    pairs = {n: (write_image(tmp_path / "p" / "blur" / f"{n}.png"), write_image(tmp_path / "p" / "sharp" / f"{n}.png"))
             for n in "ab"}
    cfg = default_data_config()
    cfg.name, cfg.data_dir, cfg.manual_dir = "paired_folder", str(tmp_path / "data"), str(tmp_path / "p")
    items = make_eval_set(cfg, None, seed=0)
    assert sorted(item["name"] for item in items) == ["a", "b"] and "kernel" not in items[0]
    for item in items:
        blurred, sharp = pairs[item["name"]]
        np.testing.assert_array_equal(item["blurred"], blurred / np.float32(255))
        np.testing.assert_array_equal(item["sharp"], sharp / np.float32(255))
    for item in make_eval_set(cfg, None, seed=0, crop=16):  # both images of a pair cropped alike
        blurred, sharp = pairs[item["name"]]  # 40x48
        np.testing.assert_array_equal(item["blurred"], blurred[12:28, 16:32] / np.float32(255))
        np.testing.assert_array_equal(item["sharp"], sharp[12:28, 16:32] / np.float32(255))


def test_more_draws_keep_the_first_and_add_new_ones(tmp_path, folder_config, small_degrade_config):
    one = as_arrays(make_eval_set(folder_config, small_degrade_config, seed=0))
    three = as_arrays(make_eval_set(folder_config, small_degrade_config, seed=0, draws=3))
    assert [i["name"] for i in three] == [i["name"] for i in one for _ in range(3)]
    for image in range(len(one)):
        draws = three[3 * image:3 * image + 3]
        np.testing.assert_array_equal(draws[0]["blurred"], one[image]["blurred"])
        for later in draws[1:]:
            np.testing.assert_array_equal(later["sharp"], one[image]["sharp"])
            assert not np.array_equal(later["kernel"], draws[0]["kernel"])
    assert len(list((tmp_path / "data").rglob("table.npz"))) == 2
    with pytest.raises(ValueError, match="draws: expected an integer >= 1, got 0"):
        make_eval_set(folder_config, small_degrade_config, seed=0, draws=0)
