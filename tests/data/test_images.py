"""Tests of reading image files into uint8 RGB HWC."""
import numpy as np
import pytest
from PIL import Image

from jdeblur.data.images import list_images, read_image, to_rgb_uint8


def test_to_rgb_uint8_channels_and_dtypes(rng):
    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(gray), np.stack([gray] * 3, axis=-1))
    np.testing.assert_array_equal(to_rgb_uint8(gray[..., None]), np.stack([gray] * 3, axis=-1))
    gray_alpha = rng.integers(0, 256, (5, 6, 2), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(gray_alpha), np.repeat(gray_alpha[..., :1], 3, axis=-1))
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), rgba[..., :3])
    wide = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    # Golden: float64 rounding of x * 255 / 65535.
    np.testing.assert_array_equal(to_rgb_uint8(wide), np.round(wide / 65535.0 * 255.0).astype(np.uint8))
    assert to_rgb_uint8(np.array([[True, False]])).tolist() == [[[255] * 3, [0] * 3]]
    floats = np.array([[-0.5, 0.5, 2.0]])
    assert to_rgb_uint8(floats)[0, :, 0].tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="image"):
        to_rgb_uint8(np.zeros((2, 3, 5), np.uint8))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio's legacy plugins try the broken file
def test_read_image_formats(tmp_path, write_image):
    rgb = write_image(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    gray16 = write_image(tmp_path / "g16.png", shape=(7, 9), dtype=np.uint16)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 1], np.round(gray16 / 257.0).astype(np.uint8))
    rgba = write_image(tmp_path / "rgba.png", shape=(7, 9, 4))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(palette.convert("RGB")))
    smooth = np.tile(np.linspace(0, 255, 48, dtype=np.uint8)[None, :, None], (40, 1, 3))
    write_image(tmp_path / "b.jpg", image=smooth)
    assert np.abs(read_image(tmp_path / "b.jpg").astype(int) - smooth).max() <= 8  # lossy
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(tmp_path / "broken.png")


def test_list_images_recursive_sorted(tmp_path, write_image):
    for name in ["b/2.PNG", "b/1.jpg", "a.png", ".hidden/x.png", "b/.x.png"]:
        write_image(tmp_path / name, shape=(2, 2, 3))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.as_posix() for p in list_images(tmp_path)] == ["a.png", "b/1.jpg", "b/2.PNG"]
