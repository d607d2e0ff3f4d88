"""Image files decoded as they look: colour spaces, EXIF orientation, and the metadata a result keeps.

Every file is made here with Pillow or tifffile; expected pixels come from Pillow's own
``exif_transpose``, scikit-image's L*a*b* conversion, or the CMYK formula in float64.
"""
import io

import numpy as np
import PIL.Image
import pytest
import skimage.color
import tifffile
from PIL import ImageCms, ImageOps

from jdeblur.data.decoding import ORIENTATION, apply_orientation, decode_image
from tests.photo_files import exif_with, smooth_rgb

SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_equals_pillows_exif_transpose(rng, orientation):
    stored = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(stored)
    image.getexif()[ORIENTATION] = orientation
    np.testing.assert_array_equal(apply_orientation(stored, orientation), np.asarray(ImageOps.exif_transpose(image)))


def test_a_phone_photo_stored_sideways_comes_out_upright_with_its_exif_and_profile(tmp_path):
    """Defect: a 40x30 JPEG with Orientation=6 (shown 30 wide, 40 high) came out sideways, tag dropped."""
    shown = smooth_rgb(40, 30)
    stored = np.rot90(shown)  # what a camera held on its side writes; Orientation 6 turns it back
    PIL.Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "phone.jpg", exif=exif_with(6),
                                                           icc_profile=SRGB_PROFILE, quality=95)
    decoded = decode_image(tmp_path / "phone.jpg")
    assert decoded.pixels.shape == (40, 30, 3)
    assert np.abs(decoded.pixels.astype(int) - shown).max() <= 6
    assert decoded.icc_profile == SRGB_PROFILE
    kept = PIL.Image.Exif()
    kept.load(decoded.exif)
    assert dict(kept) == {0x010F: "Maker", ORIENTATION: 1}
    assert decode_image(tmp_path / "phone.jpg", upright=False).pixels.shape == (30, 40, 3)


def test_an_upright_photo_keeps_its_exif_block_byte_for_byte(tmp_path):
    PIL.Image.fromarray(smooth_rgb()).save(tmp_path / "a.jpg", exif=exif_with(1))
    with PIL.Image.open(tmp_path / "a.jpg") as image:
        stored = image.info["exif"]
    assert decode_image(tmp_path / "a.jpg").exif == stored
    PIL.Image.fromarray(smooth_rgb()).save(tmp_path / "b.png")
    assert decode_image(tmp_path / "b.png").exif is None and decode_image(tmp_path / "b.png").icc_profile is None


def test_a_cmyk_jpeg_is_read_as_rgb(tmp_path):
    """Defect: a CMYK JPEG came out as a 4-channel image, C M Y as RGB and K as alpha."""
    rgb = smooth_rgb()
    PIL.Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    with PIL.Image.open(tmp_path / "print.jpg") as image:
        assert image.mode == "CMYK"
    decoded = decode_image(tmp_path / "print.jpg")
    assert decoded.pixels.shape == rgb.shape and decoded.pixels.dtype == np.uint8 and decoded.icc_profile is None
    assert np.abs(decoded.pixels.astype(int) - rgb).max() <= 6


def test_16_bit_cmyk_tiff_follows_the_formula_and_keeps_alpha(tmp_path, rng):
    cmyka = rng.integers(0, 65536, (6, 5, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", cmyka, photometric="separated", extrasamples=[2])
    ink = cmyka[..., :4] / 65535.0
    expected = np.round(65535 * (1 - ink[..., :3]) * (1 - ink[..., 3:]))
    decoded = decode_image(tmp_path / "c.tif").pixels
    assert decoded.dtype == np.uint16 and decoded.shape == (6, 5, 4)
    np.testing.assert_allclose(decoded[..., :3], expected, atol=1)
    np.testing.assert_array_equal(decoded[..., 3], cmyka[..., 4])


def test_palette_images_become_rgb_or_rgba(tmp_path, rng):
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    palette = PIL.Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "p.png").pixels, np.asarray(palette.convert("RGB")))
    palette.save(tmp_path / "t.png", transparency=0)
    decoded = decode_image(tmp_path / "t.png").pixels
    assert decoded.shape == (6, 7, 4) and set(np.unique(decoded[..., 3])) <= {0, 255}
    indices = rng.integers(0, 4, (5, 6), dtype=np.uint8)
    colormap = rng.integers(0, 65536, (3, 256), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", indices, photometric="palette", colormap=colormap)
    expected = np.round(np.moveaxis(colormap[:, indices], 0, -1).astype(float) * 255 / 65535)
    np.testing.assert_array_equal(decode_image(tmp_path / "p.tif").pixels, expected)


def test_lab_tiff_is_converted_to_srgb(tmp_path, rng):
    rgb = rng.random((8, 8, 3)) * 0.8 + 0.1
    lab = skimage.color.rgb2lab(rgb)
    lab[0] = [[lightness, 0, 0] for lightness in np.linspace(5, 95, 8)]  # a neutral row: gray, exactly
    stored = np.stack([np.round(lab[..., 0] * 255 / 100), np.round(lab[..., 1]), np.round(lab[..., 2])], -1)
    encoded = np.stack([stored[..., 0].astype(np.uint8), *(stored[..., c].astype(np.int8).view(np.uint8)
                                                           for c in (1, 2))], -1)
    PIL.Image.frombytes("LAB", (8, 8), encoded.tobytes()).save(tmp_path / "lab.tif")
    expected = skimage.color.lab2rgb(np.stack([stored[..., 0] * 100 / 255, stored[..., 1], stored[..., 2]], -1))
    decoded = decode_image(tmp_path / "lab.tif").pixels
    assert decoded.shape == (8, 8, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded[0].astype(int) - np.round(expected[0] * 255)).max() <= 1
    assert np.ptp(decoded[0].astype(int), axis=-1).max() <= 1  # gray, to LittleCMS's 8-bit rounding
    # Elsewhere LittleCMS (D50 L*a*b*, adapted to D65) and scikit-image (D65 L*a*b*) differ by a few levels.
    assert np.abs(decoded.astype(int) - np.round(expected * 255)).mean() <= 4


def test_tiff_orientation_inverted_gray_and_profile(tmp_path, rng):
    gray = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "w.tif", gray, photometric="miniswhite",
                     extratags=[(ORIENTATION, "H", 1, 8, True), (34675, "B", len(SRGB_PROFILE), SRGB_PROFILE, True)])
    decoded = decode_image(tmp_path / "w.tif")
    np.testing.assert_array_equal(decoded.pixels, np.rot90(65535 - gray))  # 8: turn 90 degrees anticlockwise
    assert decoded.icc_profile == SRGB_PROFILE and decoded.exif is None


def test_16_bit_gray_png_stays_16_bit(tmp_path, rng):
    gray = rng.integers(0, 65536, (5, 4), dtype=np.uint16)
    buffer = io.BytesIO()
    PIL.Image.fromarray(gray).save(buffer, format="PNG")
    (tmp_path / "g.png").write_bytes(buffer.getvalue())
    decoded = decode_image(tmp_path / "g.png").pixels
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, gray)
