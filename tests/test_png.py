"""The PNG codec: byte-exact against an encoder written from the specification and against Pillow;
metadata chunks that Pillow reads back."""
import io
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import PIL.Image
import pytest

from jdeblur.png import decode_png, encode_png


def reference_png(image: np.ndarray, filters) -> bytes:
    """A PNG encoded by the book, byte by byte (PNG specification section 9), row ``y`` with ``filters[y]``."""
    pixels = image[..., None] if image.ndim == 2 else image
    height, width, channels = pixels.shape
    step = channels * pixels.dtype.itemsize  # bytes per pixel: the distance to the 'left' byte
    rows = [pixels[y].astype(pixels.dtype.newbyteorder(">")).tobytes() for y in range(height)]
    data, previous = bytearray(), bytes(len(rows[0]))
    for row, kind in zip(rows, filters):
        data.append(kind)
        for i, value in enumerate(row):
            a = row[i - step] if i >= step else 0
            b = previous[i]
            c = previous[i - step] if i >= step else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            data.append((value - [0, a, b, (a + b) // 2, paeth][kind]) % 256)
        previous = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8 * pixels.dtype.itemsize, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(data)))
            + chunk(b"IEND", b""))


SHAPES = [(1, 1), (5, 7), (4, 9, 2), (6, 5, 3), (3, 8, 4)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_decode_png_equals_a_reference_encoder_with_every_filter(rng, dtype):
    for shape in SHAPES:
        image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
        filters = rng.integers(0, 5, shape[0])
        decoded = decode_png(reference_png(image, filters))
        assert decoded.dtype == dtype and decoded.shape == image.shape
        np.testing.assert_array_equal(decoded, image)


def test_encode_png_is_read_back_exactly_by_pillow_and_by_decode_png(rng):
    # Pillow reads 8-bit images of every colour type and 16-bit gray exactly (not 16-bit colour).
    for shape in SHAPES:
        for dtype in (np.uint8, np.uint16):
            image = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
            data = encode_png(image)
            np.testing.assert_array_equal(decode_png(data), image)
            if dtype == np.uint8 or len(shape) == 2:
                np.testing.assert_array_equal(iio.imread(data, plugin="pillow"), image)


def test_decode_png_rejects_truncated_and_corrupt_files(rng):
    data = encode_png(rng.integers(0, 65536, (8, 8, 3)).astype(np.uint16))
    with pytest.raises(ValueError, match="truncated"):
        decode_png(data[:len(data) // 2])
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(corrupt))
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a" + data)


def test_encode_png_embeds_the_icc_profile_and_exif_block_pillow_reads(rng):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tags = PIL.Image.Exif()
    tags[0x010F], tags[0x0112] = "Maker", 1
    for dtype in (np.uint8, np.uint16):
        image = rng.integers(0, np.iinfo(dtype).max + 1, (6, 5, 3)).astype(dtype)
        data = encode_png(image, icc_profile=profile, exif=tags.tobytes())  # with JPEG's Exif\0\0 prefix
        with PIL.Image.open(io.BytesIO(data)) as read:
            assert read.info["icc_profile"] == profile
            assert dict(read.getexif()) == {0x010F: "Maker", 0x0112: 1}
        np.testing.assert_array_equal(decode_png(data), image)
