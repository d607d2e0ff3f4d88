"""Random training patches of uint8 HWC images: crop, rescale, flip/rotate, brightness/colour jitter.

Runs on the host inside the grain pipeline, in numpy on uint8 RGB HWC arrays (the network's
float32 in [0, 1] is made on the device). Every image of a record (``'sharp'``, and ``'blurred'``
for real pairs) gets the same crop, scale, flip, rotation and jitter, so pairs stay aligned
pixel for pixel. All randomness comes from the ``np.random.Generator`` that grain seeds from the
pipeline's seed and the element's index.
"""
import numpy as np
from PIL import Image


def reflect_pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pads an HWC image (evenly on both sides) so both sides are at least ``size``.

    Images smaller than the crop are padded rather than upscaled: padding keeps the pixel scale
    (and so the blur's scale) of the data, and only the border of such a patch is synthetic.
    """
    pad_h, pad_w = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="reflect")


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes a uint8 HWC image to size x size (bicubic; antialiased when shrinking)."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def jitter(image: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Multiplies each channel of a uint8 HWC image by ``gains`` (rounded, clipped to 0..255).

    Through a 256-entry table per channel: a lookup is cheaper than float arithmetic on the patch.
    """
    table = np.clip(np.rint(np.arange(256)[:, None] * gains), 0, 255).astype(np.uint8)
    out = np.empty(image.shape, np.uint8)
    for c in range(image.shape[-1]):
        np.take(table[:, c], image[..., c], out=out[..., c])
    return out


def random_patch(images: dict[str, np.ndarray], rng: np.random.Generator, *, size: int,
                 flips: bool = True, rotations: bool = True, scale_range: tuple[float, float] = (1.0, 1.0),
                 brightness: float = 0.0, color: float = 0.0) -> dict[str, np.ndarray]:
    """One random ``size`` x ``size`` patch of every image in ``images``, all transformed alike.

    Args:
      images: uint8 HxWx3 arrays of one shape (e.g. ``{'blurred': ..., 'sharp': ...}``).
      rng: the element's generator (grain's ``random_map`` passes it).
      size: the patch side in pixels.
      flips: random horizontal and vertical flips.
      rotations: random rotation by a multiple of 90 degrees (with flips: all 8 symmetries).
      scale_range: the patch shows a region of ``size / s`` pixels resized to ``size``, with
        ``s`` uniform in this range (s < 1 zooms out); ``(1, 1)`` crops without resampling.
      brightness: the patch is multiplied by a factor uniform in ``[1 - b, 1 + b]``.
      color: and each channel by its own factor uniform in ``[1 - c, 1 + c]``.

    Returns:
      A dict with the same keys and uint8 (size, size, 3) contiguous arrays.
    """
    shapes = {k: v.shape for k, v in images.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"images: expected one shape for all images of a record, got {shapes}")
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range: expected 0 < low <= high, got {scale_range}")
    scale = rng.uniform(low, high) if high > low else low
    region = max(1, int(round(size / scale)))
    images = {k: reflect_pad_to(v, region) for k, v in images.items()}
    height, width = next(iter(images.values())).shape[:2]
    top, left = rng.integers(0, height - region + 1), rng.integers(0, width - region + 1)
    hflip, vflip = (rng.integers(2, size=2) if flips else (0, 0))
    turns = rng.integers(4) if rotations else 0
    gains = np.ones(3)
    if brightness or color:
        gains = (1 + rng.uniform(-brightness, brightness)) * (1 + rng.uniform(-color, color, size=3))
    patches = {}
    for key, image in images.items():
        patch = resize(image[top:top + region, left:left + region], size)
        patch = patch[::-1 if vflip else 1, ::-1 if hflip else 1]
        patch = np.rot90(patch, turns)
        patches[key] = jitter(patch, gains) if brightness or color else np.ascontiguousarray(patch)
    return patches
