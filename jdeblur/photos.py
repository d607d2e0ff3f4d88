"""A user's photo files: finding them, reading them as they look, writing results safely.

Unlike the datasets (which store every image as uint8 RGB), deblurring a user's photos keeps each
file's form: grayscale stays grayscale, an alpha channel is kept, 16-bit stays 16-bit. Each file
is decoded as a viewer shows it (``jdeblur.data.decoding``): CMYK, palette and L*a*b* become RGB,
EXIF orientation is applied. Arrays are HxW or HxWxC (C = 1..4) uint8 or uint16;
``jdeblur.infer.restore`` turns them into the model's float32 RGB in [0, 1] and back.

Results are PNG files (or TIFF or JPEG: ``OUTPUT_FORMATS``) with the input's base name, stored
upright, keeping the input's ICC colour profile (``iCCP``) and EXIF block (``eXIf``, orientation
reset to 1) where it had them (TIFF keeps the profile only); each is written atomically
(``jdeblur.atomic``), so an interrupted run leaves only whole results, and ``skip_existing``
finishes the folder (``jdeblur.deblurrer.deblur_files``). 16-bit colour PNGs go through
``jdeblur.png``, since Pillow cannot write them; TIFFs through tifffile.

Memory: an image of more than ``MAX_PIXELS`` is refused from its header, before it is decoded
(Pillow's decompression-bomb limit, applied to every format); smaller ones are restored in tiles
of at most ``--max-pixels`` per model call, and an explicit ``--tile`` over that budget is refused.
"""
import glob
import io
import math
import pathlib

import numpy as np
import PIL.Image

from jdeblur.atomic import write_bytes
from jdeblur.data.decoding import DecodedImage, decode_image, pixel_count
from jdeblur.data.images import IMAGE_SUFFIXES, is_image_file, list_images
from jdeblur.errors import UserError
from jdeblur.png import encode_png
from jdeblur.tiling import tile_for_budget

FORMATS = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
# Photos are padded to multiples of this many pixels before the model sees them: a folder of
# photos of many sizes then compiles a few programs (one per padded size), not one per size.
COMPILE_MULTIPLE = 128
# Pillow refuses images over twice its warning size as decompression bombs (178,956,970 pixels,
# 0.5 GB as 8-bit RGB, 2 GB as the float32 result); the same limit holds for the formats read
# without Pillow (16-bit colour PNG, TIFF), checked from their headers.
MAX_PIXELS = 2 * PIL.Image.MAX_IMAGE_PIXELS


# Result formats and their suffixes. PNG and TIFF keep every form (gray, alpha, 16 bits); JPEG is
# 8-bit without alpha: 16-bit results are rounded to 8 bits and alpha is dropped.
OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif"}


class PhotoError(UserError):
    """An input or output path of ``deblur`` that cannot be used; the message names it."""


def collect_inputs(spec: str) -> list[pathlib.Path]:
    """The image files named by ``spec``: a file, a folder (recursively) or a glob pattern.

    Raises PhotoError naming ``spec`` when it matches no image file.
    """
    path = pathlib.Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [path / p for p in list_images(path)]
        if not found:
            raise PhotoError(f"--input {spec}: the folder holds no image files; expected files ending in {FORMATS}")
        return found
    matches = sorted(pathlib.Path(p) for p in glob.glob(spec, recursive=True))
    found = [p for p in matches if p.is_file() and is_image_file(p)]
    if not found:
        raise PhotoError(f"--input {spec}: no such file or folder, and no image file ({FORMATS}) matches it "
                         f"as a pattern")
    return found


def read_photo(path) -> np.ndarray:
    """Reads an image file as it looks (see the module docstring): HxW or HxWxC (C = 1..4), uint8 or uint16.

    Raises PhotoError naming the file for anything that is not a whole, decodable image.
    """
    return read_photo_with_metadata(path).pixels


def read_photo_with_metadata(path) -> DecodedImage:
    """``read_photo``'s pixels with the ICC profile and EXIF block a result keeps (``DecodedImage``)."""
    path = pathlib.Path(path)
    try:
        pixels = pixel_count(path) or 0  # PNG and TIFF; Pillow checks the other formats itself when it opens them
        if pixels > MAX_PIXELS:
            raise PIL.Image.DecompressionBombError(f"{pixels} pixels")
        decoded = decode_image(path)
    except PIL.Image.DecompressionBombError as e:
        size = str(e).split(",")[0]
        raise PhotoError(f"--input {path}: too large to deblur in memory ({size}); expected at most "
                         f"{MAX_PIXELS} pixels: crop or downscale it") from e
    except Exception as e:  # decoders raise many types; the user needs the file's name and the reason
        raise PhotoError(f"--input {path}: {_read_failure(e)}; expected a complete image file ({FORMATS})") from e
    image = decoded.pixels
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise PhotoError(f"--input {path}: expected an HxW or HxWxC image with C in 1..4, got shape {image.shape}")
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 65535:
            image = image.astype(np.uint16)
        else:
            raise PhotoError(f"--input {path}: expected 8- or 16-bit unsigned integer pixels, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise PhotoError(f"--input {path}: empty image of shape {image.shape}")
    return DecodedImage(image, decoded.icc_profile, decoded.exif)


def _read_failure(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "can not handle" in text or "cannot identify" in text or "Could not find a backend" in text:
        return "not an image file (format not recognised)"
    return f"unreadable ({text})"


def output_path(input_path: pathlib.Path, output_dir: pathlib.Path, fmt: str = "png") -> pathlib.Path:
    """Where the result for ``input_path`` goes: the same base name, with the suffix of ``fmt``."""
    return output_dir / (input_path.stem + OUTPUT_FORMATS[fmt])


def plan_outputs(inputs: list[pathlib.Path], output_dir: pathlib.Path, *, overwrite: bool,
                 skip_existing: bool = False, fmt: str = "png") -> list[pathlib.Path]:
    """The output path of every input; raises PhotoError if two inputs share one, one would replace
    its own input, or one exists (unless ``overwrite`` or ``skip_existing``)."""
    outputs = [output_path(p, output_dir, fmt) for p in inputs]
    seen = {}
    for source, target in zip(inputs, outputs):
        if target in seen:
            raise PhotoError(f"--input: {seen[target]} and {source} would both be written to {target}; "
                             f"expected distinct base names (rename one or deblur them separately)")
        seen[target] = source
        if target.exists() and target.resolve() == source.resolve():
            raise PhotoError(f"--output {output_dir}: the result of {source} would replace the input itself; "
                             f"expected another output folder")
    existing = [t for t in outputs if t.exists()]
    if overwrite and skip_existing:
        raise PhotoError("--overwrite and --skip-existing: expected one of them (replace the results there, or "
                         "keep them and deblur only the missing ones)")
    if existing and not (overwrite or skip_existing):
        raise PhotoError(f"--output {output_dir}: {len(existing)} result(s) already exist (e.g. {existing[0]}); "
                         f"pass --skip-existing to deblur only the missing ones, --overwrite to replace them, "
                         f"or choose another folder")
    if any(t.is_dir() for t in existing):
        raise PhotoError(f"--output {output_dir}: {next(t for t in existing if t.is_dir())} is a folder; "
                         f"expected a file name free for the result")
    return outputs


def write_png_atomic(path, image: np.ndarray, *, icc_profile: bytes | None = None,
                     exif: bytes | None = None) -> None:
    """Writes ``image`` (HxW or HxWxC, uint8 or uint16) as PNG at ``path``, atomically, with an optional
    ICC profile and EXIF block (see ``jdeblur.png.encode_png``)."""
    if image.dtype == np.uint16:
        data = encode_png(image, icc_profile=icc_profile, exif=exif)
    else:
        buffer = io.BytesIO()
        pixels = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        PIL.Image.fromarray(pixels).save(buffer, format="PNG", icc_profile=icc_profile, exif=exif)
        data = buffer.getvalue()
    write_bytes(path, data)


def write_result_atomic(path, image: np.ndarray, fmt: str = "png", *, quality: int = 95,
                        icc_profile: bytes | None = None, exif: bytes | None = None) -> None:
    """Writes a result (HxW or HxWxC, uint8 or uint16) atomically as ``fmt``: one of ``OUTPUT_FORMATS``.

    PNG and JPEG keep the ICC profile and EXIF block; TIFF keeps the ICC profile. JPEG (``quality``
    1-95, Pillow's scale) holds 8 bits and no alpha: 16-bit values are rounded to 8 bits, alpha dropped.
    """
    if fmt == "png":
        write_png_atomic(path, image, icc_profile=icc_profile, exif=exif)
    elif fmt == "tiff":
        import tifffile

        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric="rgb" if image.ndim == 3 and image.shape[-1] >= 3
                         else "minisblack", extrasamples=("unassalpha",) if image.ndim == 3 and
                         image.shape[-1] in (2, 4) else None, iccprofile=icc_profile, compression="zlib")
        write_bytes(path, buffer.getvalue())
    else:
        colour = image[..., :3] if image.ndim == 3 and image.shape[-1] >= 3 else image[..., :1] if image.ndim == 3 \
            else image
        if colour.dtype == np.uint16:
            colour = ((colour.astype(np.uint32) + 128) // 257).astype(np.uint8)  # 65535 -> 255, rounded
        pixels = colour[..., 0] if colour.ndim == 3 and colour.shape[-1] == 1 else colour
        buffer = io.BytesIO()
        metadata = {k: v for k, v in (("icc_profile", icc_profile), ("exif", exif)) if v is not None}
        PIL.Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, **metadata)
        write_bytes(path, buffer.getvalue())


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """``image`` (HxW or HxWxC) reflect-padded at the bottom and right to multiples of ``multiple``."""
    pad = [(0, -image.shape[0] % multiple), (0, -image.shape[1] % multiple)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="reflect")


def check_tiling(size_multiple: int, *, tile, max_pixels: int, overlap: int) -> None:
    """Raises PhotoError unless ``tile`` (or the one ``max_pixels`` allows) and ``overlap`` suit the model."""
    if tile is None:
        try:
            tile = tile_for_budget(max_pixels, size_multiple=size_multiple)
        except ValueError as e:
            raise PhotoError(f"--max-pixels {max_pixels}: expected at least {size_multiple ** 2} "
                             f"(the model's size multiple, squared)") from e
    if tile < size_multiple:
        raise PhotoError(f"--tile {tile}: expected at least the model's size multiple, {size_multiple}")
    if tile * tile > max_pixels:
        raise PhotoError(f"--tile {tile}: a {tile}x{tile} tile is over the budget of --max-pixels "
                         f"{max_pixels} per model call; expected --tile at most {math.isqrt(max_pixels)}, "
                         f"or a larger --max-pixels")
    if tile - overlap < size_multiple:
        raise PhotoError(f"--overlap {overlap}: expected at most the tile side ({tile}) minus the model's "
                         f"size multiple ({size_multiple})")


def estimate_photo_noise(image: np.ndarray) -> float:
    """The noise level of a photo as read (HW or HWC, 8/16-bit or float; alpha ignored), in [0, 1] units."""
    from jdeblur.physics.noise import estimate_noise_sigma

    array = image[..., None] if image.ndim == 2 else image
    colour = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(colour.dtype, 1.0)
    return float(estimate_noise_sigma(colour.astype(np.float32) / scale))
