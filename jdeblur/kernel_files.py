"""Blur kernels given as files, for non-blind deblurring of a user's photos (``deblur --kernel``).

A kernel file is a NumPy ``.npy`` array (H, W), or a grayscale image (PNG, TIFF or any format
Pillow reads; 8 or 16 bits, or float TIFF), such as a measured PSF. It is read as float32 and
normalised to sum to 1, with its centre at pixel ``(kh // 2, kw // 2)``, the convention of
``jdeblur.physics.kernels`` (``scipy.ndimage.convolve``'s). A colour image whose channels are
equal is taken as gray; one with colour is refused (a kernel blurs every channel alike here).
"""
import pathlib

import numpy as np
from PIL import Image

from jdeblur.errors import UserError


def read_kernel(path, *, name: str = "--kernel") -> np.ndarray:
    """Reads, checks and normalises a kernel file: float32 (kh, kw), non-negative, summing to 1.

    Raises:
      UserError: naming the file, for a missing or unreadable file, a kernel that is not 2-D (or
        gray), empty, has negative or non-finite values, or sums to 0.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{name} {path}: no such file; expected a kernel as .npy or a grayscale PNG/TIFF")
    try:
        array = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else _read_image(path)
    except (OSError, ValueError) as error:
        raise UserError(f"{name} {path}: cannot read a kernel from it ({error})") from error
    return normalize_kernel_array(array, f"{name} {path}")


def normalize_kernel_array(array, name: str) -> np.ndarray:
    """Checks a 2-D kernel array and scales it to sum to 1 (float32); ``name`` heads the errors."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        colour = array[..., :3]
        if not np.all(colour == colour[..., :1]):
            raise UserError(f"{name}: a colour kernel ({array.shape}); expected one gray kernel for every channel")
        array = colour[..., 0]
    if array.ndim != 2:
        raise UserError(f"{name}: expected a 2-D kernel (H, W), got shape {array.shape}")
    if array.size == 0:
        raise UserError(f"{name}: the kernel is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise UserError(f"{name}: expected real numbers, got dtype {array.dtype}")
    kernel = array.astype(np.float64)  # the scale of integer pixels goes with the normalisation
    if not np.all(np.isfinite(kernel)):
        raise UserError(f"{name}: the kernel holds NaN or Inf")
    if np.any(kernel < 0):
        raise UserError(f"{name}: the kernel has negative values (min {kernel.min():.3g}); "
                        "expected a point-spread function, >= 0 everywhere")
    total = kernel.sum()
    if total <= 0:
        raise UserError(f"{name}: the kernel is all zeros; expected a point-spread function with a positive sum")
    return (kernel / total).astype(np.float32)


def check_kernel_fits(kernel: np.ndarray, image_shape, name: str) -> None:
    """Raises UserError unless the kernel is no larger than the image (``name``: the image)."""
    height, width = image_shape[:2]
    if kernel.shape[0] > height or kernel.shape[1] > width:
        raise UserError(f"{name}: the image ({height}x{width}) is smaller than the kernel "
                        f"({kernel.shape[0]}x{kernel.shape[1]}); expected a kernel no larger than the image")


def _read_image(path: pathlib.Path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return np.asarray(image)
