"""Photo files of every form a user's folder may hold, phone-photo metadata, and PNG headers that lie."""
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import PIL.Image

from jdeblur.data.decoding import ORIENTATION
from jdeblur.png import PNG_SIGNATURE, encode_png


def write_sample_files(folder, rng) -> dict[str, np.ndarray]:
    """Image files of every form a photo folder may hold (PNG, JPEG, TIFF; gray, gray+alpha, RGB, RGBA;
    8 and 16 bits; odd sizes, 1x1); returns the pixels each decodes to."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "rgb.png": rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        "gray.png": rng.integers(0, 256, (40, 31), dtype=np.uint8),
        "rgba.png": rng.integers(0, 256, (29, 45, 4), dtype=np.uint8),
        "gray_alpha.png": rng.integers(0, 256, (33, 20, 2), dtype=np.uint8),
        "deep_gray.png": rng.integers(0, 65536, (26, 38), dtype=np.uint16),
        "dot.png": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
    }
    for name, array in arrays.items():
        iio.imwrite(folder / name, array, extension=".png", plugin="pillow")
    arrays["deep_rgba.png"] = rng.integers(0, 65536, (21, 17, 4), dtype=np.uint16)
    (folder / "deep_rgba.png").write_bytes(encode_png(arrays["deep_rgba.png"]))  # Pillow cannot
    arrays["deep_rgb.tif"] = rng.integers(0, 65536, (19, 23, 3), dtype=np.uint16)
    iio.imwrite(folder / "deep_rgb.tif", arrays["deep_rgb.tif"], plugin="tifffile")
    for name, shape in (("photo.jpg", (48, 64, 3)), ("gray_photo.jpeg", (30, 41))):
        iio.imwrite(folder / name, rng.integers(0, 256, shape, dtype=np.uint8), extension=".jpg", plugin="pillow")
        arrays[name] = iio.imread(folder / name, plugin="pillow")  # JPEG is lossy: what it decodes to
    return arrays


def smooth_rgb(height=24, width=32) -> np.ndarray:
    """A smooth colour image (JPEG keeps it to a few levels)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([40 + 160 * x / width, 60 + 120 * y / height, 200 - 100 * (x + y) / (height + width)],
                    axis=-1).round().astype(np.uint8)


def exif_with(orientation: int) -> PIL.Image.Exif:
    """An EXIF block with a maker tag and the given orientation tag."""
    tags = PIL.Image.Exif()
    tags[0x010F], tags[ORIENTATION] = "Maker", orientation
    return tags


def declared_png(width, height, depth, channels) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but whose pixel data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(bytes(64))), (b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in chunks)
