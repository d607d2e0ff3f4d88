"""Decoding an image file as it looks: colour spaces to RGB or gray, EXIF orientation, and its metadata.

What a viewer shows is what comes out, as HxW or HxWxC (C = 1..4) arrays of the stored bit depth:

- CMYK (JPEG, TIFF) becomes RGB by ``R = (1 - C)(1 - K)`` (and G, B alike), the formula Pillow 13
  uses, without colour management: a CMYK ICC profile is not applied, and is dropped, since an
  RGB file cannot carry it. A fifth (alpha) sample is kept.
- CIE L*a*b* (8-bit, TIFF) becomes sRGB through LittleCMS (Pillow's ``ImageCms``, D50 Lab
  adapted to sRGB's D65 white); 16-bit Lab is refused.
- Palette images become RGB, or RGBA when the palette has transparency; 1-bit images gray {0, 255};
  ``MINISWHITE`` TIFFs are inverted; 16-bit gray (``I;16``) stays 16-bit gray.
- EXIF orientation (JPEG, PNG ``eXIf``, WebP, TIFF tag 274) is applied when ``upright`` (default),
  so that a phone photo stored sideways comes out as it is shown.

Metadata for the result: the ICC profile (unless the colours were converted, above) and, for files
with an EXIF block (JPEG, PNG, WebP), that block, with its orientation reset to 1 (upright) when
the pixels were turned. A TIFF's tags are its file structure, not EXIF: they are not carried.

16-bit colour PNGs go through ``jdeblur.png`` (Pillow reads them as 8-bit); TIFFs through
``tifffile`` (16-bit colour, multi-sample); everything else through Pillow. Multi-frame files
(GIF, WebP, multi-page TIFF) give their first frame.
"""
import dataclasses
import pathlib

import numpy as np
import PIL.Image

from jdeblur.png import decode_png, png_header

ORIENTATION = 0x0112  # the EXIF/TIFF orientation tag
ICC_PROFILE_TAG = 34675  # TIFF InterColorProfile
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """An image file's pixels as it looks, and what a result written from it should keep."""

    pixels: np.ndarray  # HxW or HxWxC (C = 1..4), the stored integer type (uint8, uint16), or float/bool
    icc_profile: bytes | None = None  # the colour profile the pixels are in (None: sRGB)
    exif: bytes | None = None  # the EXIF block, orientation reset to 1 when the pixels were turned upright


def pixel_count(path) -> int | None:
    """Height x width from the file's header, for PNG and TIFF (the formats not read by Pillow, which
    checks its own); None for others."""
    path = pathlib.Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            return page.imagelength * page.imagewidth
    header = png_header(path)
    return header[0] * header[1] if header else None


def decode_image(path, *, upright: bool = True) -> DecodedImage:
    """Decodes ``path`` as it looks (see the module docstring); ``upright=False`` keeps the stored
    orientation. Raises whatever the decoders raise for a file they cannot read."""
    path = pathlib.Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        pixels, icc, orientation = _decode_tiff(path)
        exif = None
    else:
        header = png_header(path)
        with PIL.Image.open(path) as image:
            icc = image.info.get("icc_profile") or None
            tags = image.getexif()
            orientation = tags.get(ORIENTATION, 1)
            if header and header[2] == 16 and header[3] in (2, 4, 6):  # 16-bit colour: Pillow would make it 8-bit
                pixels, converted = decode_png(path.read_bytes()), False
            else:
                pixels, converted = _pillow_pixels(image)
            exif = _exif_for_result(image.info.get("exif"), tags, turned=upright and orientation not in (None, 1))
        if converted:
            icc = None
    if upright:
        pixels = apply_orientation(pixels, orientation)
    return DecodedImage(pixels, icc, exif)


def apply_orientation(pixels: np.ndarray, orientation) -> np.ndarray:
    """``pixels`` (HxW[xC]) as shown under EXIF ``orientation`` (1-8; anything else is taken as 1)."""
    if orientation in (5, 6, 7, 8):  # the transposed ones
        pixels = np.swapaxes(pixels, 0, 1)
    flip_rows, flip_cols = {2: (False, True), 3: (True, True), 4: (True, False), 6: (False, True),
                            7: (True, True), 8: (True, False)}.get(orientation, (False, False))
    if flip_rows:
        pixels = pixels[::-1]
    if flip_cols:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """HxWx4 (or x5, with alpha last) unsigned CMYK to HxWx3 (or x4) RGB of the same type:
    ``R = (1 - C)(1 - K)``, rounded."""
    top = np.iinfo(cmyk.dtype).max
    ink = cmyk.astype(np.int64)
    rgb = ((top - ink[..., :3]) * (top - ink[..., 3:4]) + top // 2) // top
    return np.concatenate([rgb, ink[..., 4:5]], axis=-1).astype(cmyk.dtype)


def lab_to_rgb(lab: PIL.Image.Image) -> np.ndarray:
    """A Pillow ``LAB`` image (8-bit) as HxWx3 uint8 sRGB, through LittleCMS."""
    from PIL import ImageCms

    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return np.asarray(ImageCms.applyTransform(lab, transform))


def _pillow_pixels(image: PIL.Image.Image) -> tuple[np.ndarray, bool]:
    """The pixels of an open Pillow image as it looks, and whether its colour space was converted."""
    mode = image.mode
    if mode == "CMYK":
        return cmyk_to_rgb(np.asarray(image)), True
    if mode == "LAB":
        return lab_to_rgb(image), True
    if mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("RGBX", "YCbCr", "HSV"):
        image = image.convert("RGB")
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        image = image.convert(mode[:-1] + "A")
    pixels = np.asarray(image)
    if not pixels.dtype.isnative:  # I;16B
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return pixels, False


def _exif_for_result(raw: bytes | None, tags: PIL.Image.Exif, *, turned: bool) -> bytes | None:
    """The EXIF block a result keeps: as stored, or with orientation 1 when the pixels were turned."""
    if not raw or not turned:
        return raw or None
    tags[ORIENTATION] = 1
    try:
        return tags.tobytes()
    except Exception:  # an EXIF block Pillow cannot write back: dropped rather than kept saying 'turn me'
        return None


def _decode_tiff(path: pathlib.Path) -> tuple[np.ndarray, bytes | None, int]:
    """(pixels as they look, ICC profile or None, orientation) of a TIFF file's first page."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        pixels = page.asarray()
        photometric = tifffile.PHOTOMETRIC(page.photometric)
        tags = {tag.code: tag.value for tag in page.tags.values() if tag.code in (ORIENTATION, ICC_PROFILE_TAG)}
        colormap = page.colormap if photometric == tifffile.PHOTOMETRIC.PALETTE else None
        planar = page.axes.startswith("S")
    if planar:  # samples stored as separate planes
        pixels = np.moveaxis(pixels, 0, -1)
    icc = tags.get(ICC_PROFILE_TAG)
    icc = bytes(icc) if icc else None
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        pixels = np.iinfo(pixels.dtype).max - pixels if pixels.dtype.kind == "u" else ~pixels
    elif photometric == tifffile.PHOTOMETRIC.SEPARATED and pixels.ndim == 3 and pixels.shape[-1] >= 4:
        pixels, icc = cmyk_to_rgb(pixels), None
    elif photometric == tifffile.PHOTOMETRIC.PALETTE:
        rgb = np.moveaxis(colormap[:, pixels], 0, -1).astype(np.uint16)  # a TIFF colormap is 16-bit
        # 8-bit indices (the usual case) give 8-bit colours, as Pillow reads them.
        pixels = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8) if pixels.dtype == np.uint8 \
            else rgb
    elif photometric == tifffile.PHOTOMETRIC.CIELAB:
        if pixels.dtype != np.uint8:
            raise ValueError(f"{pixels.dtype} CIE L*a*b* TIFF: only 8-bit L*a*b* is converted; expected RGB or "
                             f"8-bit L*a*b*")
        pixels, icc = lab_to_rgb(PIL.Image.frombytes("LAB", pixels.shape[1::-1], pixels[..., :3].tobytes())), None
    elif photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
        raise ValueError(f"TIFF colour space {photometric.name}: expected gray, RGB, CMYK, palette or L*a*b*")
    return pixels, icc, int(tags.get(ORIENTATION, 1))
