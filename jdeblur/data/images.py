"""Reading a user's image files into the one stored form: uint8 RGB, HWC.

The datasets store uint8 HWC RGB arrays (the network sees float32 in [0, 1] after the train step
divides by 255 on the device). Every source is brought to that form here, once, when a dataset is
built:

- grayscale (HxW or HxWx1) is replicated to three channels; gray+alpha and RGBA drop alpha;
- 16-bit (and other wider integer) images are scaled to 8 bits with rounding
  (``round(x * 255 / 65535)``): deblurring benchmarks are 8-bit, and one dtype keeps the pipeline
  and its host-to-device traffic uniform;
- bool images map to {0, 255}, float images are clipped to [0, 1] and scaled;
- CMYK, palette and L*a*b* files are decoded as they look (``jdeblur.data.decoding``); EXIF
  orientation is not applied (both images of a pair are read alike, so pairs stay aligned).
"""
import os
import pathlib

import numpy as np

from jdeblur.data.decoding import decode_image
from jdeblur.errors import UserError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Converts a decoded image (gray, gray+alpha, RGB, RGBA; 8/16-bit, bool or float) to uint8 HxWx3."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise UserError(f"{name}: expected an HxW or HxWxC image with C in 1..4, got shape {image.shape}")
    channels = image.shape[-1]
    image = image[..., :1] if channels <= 2 else image[..., :3]
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif np.issubdtype(image.dtype, np.integer):
        # Treat wider integers as 16-bit samples (PNG/TIFF 16-bit decode to uint16 or int32).
        wide = np.clip(image.astype(np.int64), 0, 65535)
        image = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise UserError(f"{name}: unsupported pixel type {image.dtype}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image)


def read_image(path: os.PathLike | str) -> np.ndarray:
    """Reads one image file as uint8 HxWx3 (see the module docstring for the conversions)."""
    path = pathlib.Path(path)
    try:
        decoded = decode_image(path, upright=False).pixels
    except Exception as e:  # The decoders raise many types; the user needs the file's name.
        raise UserError(f"cannot read image file {path}: {e}") from e
    return to_rgb_uint8(decoded, name=str(path))


def is_image_file(path: pathlib.Path) -> bool:
    """Whether ``path`` names an image file we read (by suffix, case-insensitive; hidden files skipped)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: os.PathLike | str) -> list[pathlib.Path]:
    """Image files under ``folder``, recursively, as paths relative to it, sorted (hidden folders skipped)."""
    folder = pathlib.Path(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in files:
            path = pathlib.Path(root, file)
            if is_image_file(path):
                found.append(path.relative_to(folder))
    return sorted(found, key=lambda p: p.as_posix())
