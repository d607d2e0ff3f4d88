"""A user's photo files: finding them, reading them as they are, deblurring them, writing results safely.

Unlike the datasets (which store every image as uint8 RGB), deblurring a user's photos keeps each
file's form: grayscale stays grayscale, an alpha channel is kept, 16-bit stays 16-bit. Arrays are
HxW or HxWxC (C = 1..4) uint8 or uint16 as stored; ``jdeblur.infer.restore`` turns them into the
model's float32 RGB in [0, 1] and back. Results are PNG files with the input's base name, written
to a temporary name and renamed, so an interrupted run never leaves a half-written file under a
final name.

Pillow reads 16-bit colour PNGs (RGB, RGBA, gray+alpha) as 8-bit and cannot write them, so those
go through the small PNG codec at the end of this module (``encode_png``, ``decode_png``).

Memory: an image of more than ``MAX_PIXELS`` is refused from its header, before it is decoded
(Pillow's decompression-bomb limit, applied to every format); smaller ones are restored in tiles
of at most ``--max-pixels`` per model call, and an explicit ``--tile`` over that budget is refused.
"""
import glob
import math
import pathlib
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import PIL.Image

from jdeblur.atomic import write_bytes
from jdeblur.checks import check_folder_writable
from jdeblur.data.images import IMAGE_SUFFIXES, is_image_file, list_images
from jdeblur.tiling import tile_for_budget

FORMATS = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
# Photos are padded to multiples of this many pixels before the model sees them: a folder of
# photos of many sizes then compiles a few programs (one per padded size), not one per size.
COMPILE_MULTIPLE = 128
# Pillow refuses images over twice its warning size as decompression bombs (178,956,970 pixels,
# 0.5 GB as 8-bit RGB, 2 GB as the float32 result); the same limit holds for the formats read
# without Pillow (16-bit colour PNG, TIFF), checked from their headers.
MAX_PIXELS = 2 * PIL.Image.MAX_IMAGE_PIXELS


class PhotoError(ValueError):
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
    """Reads an image file as HxW or HxWxC (C = 1..4), uint8 or uint16, exactly as stored.

    Palette images come as RGB(A), 1-bit ones as uint8 {0, 255}, multi-frame files as their
    first frame; EXIF orientation is not applied (the result has the stored height and width).

    Raises PhotoError naming the file for anything that is not a whole, decodable image.
    """
    path = pathlib.Path(path)
    tiff = path.suffix.lower() in (".tif", ".tiff")
    try:
        header = None if tiff else _png_header(path)
        if tiff:
            pixels = _tiff_pixels(path)
        else:  # a PNG's header says; Pillow checks the other formats itself when it opens them
            pixels = header[0] * header[1] if header else 0
        if pixels > MAX_PIXELS:
            raise PIL.Image.DecompressionBombError(f"{pixels} pixels")
        if header and header[2] == 16 and header[3] in (2, 4, 6):  # 16-bit colour: Pillow would make it 8-bit
            image = decode_png(path.read_bytes())
        else:
            image = iio.imread(path, plugin="tifffile" if tiff else "pillow")
    except PIL.Image.DecompressionBombError as e:
        size = str(e).split(",")[0]
        raise PhotoError(f"--input {path}: too large to deblur in memory ({size}); expected at most "
                         f"{MAX_PIXELS} pixels: crop or downscale it") from e
    except Exception as e:  # decoders raise many types; the user needs the file's name and the reason
        raise PhotoError(f"--input {path}: {_read_failure(e)}; expected a complete image file ({FORMATS})") from e
    if image.ndim == 4:  # animated GIF/WebP or multi-page TIFF: the first frame
        image = image[0]
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
    return image


def _read_failure(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "can not handle" in text or "cannot identify" in text or "Could not find a backend" in text:
        return "not an image file (format not recognised)"
    return f"unreadable ({text})"


def output_path(input_path: pathlib.Path, output_dir: pathlib.Path) -> pathlib.Path:
    """Where the result for ``input_path`` goes: the same base name, as PNG."""
    return output_dir / (input_path.stem + ".png")


def plan_outputs(inputs: list[pathlib.Path], output_dir: pathlib.Path, *, overwrite: bool) -> list[pathlib.Path]:
    """The output path of every input; raises PhotoError if two inputs share one, one would replace
    its own input, or one exists (unless ``overwrite``)."""
    outputs = [output_path(p, output_dir) for p in inputs]
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
    if existing and not overwrite:
        raise PhotoError(f"--output {output_dir}: {len(existing)} result(s) already exist (e.g. {existing[0]}); "
                         f"pass --overwrite or choose another folder")
    if any(t.is_dir() for t in existing):
        raise PhotoError(f"--output {output_dir}: {next(t for t in existing if t.is_dir())} is a folder; "
                         f"expected a file name free for the result")
    return outputs


def write_png_atomic(path, image: np.ndarray) -> None:
    """Writes ``image`` as PNG at ``path`` via a temporary file in the same folder and a rename."""
    data = encode_png(image) if image.dtype == np.uint16 else iio.imwrite("<bytes>", image, extension=".png",
                                                                            plugin="pillow")
    write_bytes(path, data)


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


def deblur_files(workdir, input_spec: str, output_dir, *, tile=None, max_pixels=1024 * 1024, overlap=64,
                 ensemble=False, which="best", overwrite=False, progress=True) -> list[pathlib.Path]:
    """Deblurs every image named by ``input_spec`` with a trained run; returns the written paths.

    Everything is checked before anything is written: the workdir and its checkpoint, the inputs
    (each decoded once), the output names and folder. Then images are read, restored and written
    one at a time (memory stays that of the largest image), each result atomically. Images are
    reflect-padded to multiples of ``COMPILE_MULTIPLE`` and cropped back (see there).
    """
    import tqdm

    from jdeblur import infer
    from jdeblur import workdir as workdirs

    workdirs.load_config(workdir)
    workdirs.choose_step(workdir, which)
    inputs = collect_inputs(input_spec)
    output_dir = pathlib.Path(output_dir)
    outputs = plan_outputs(inputs, output_dir, overwrite=overwrite)
    check_folder_writable(output_dir, "--output")
    # Shown on a terminal only, and erased by the with on an error, so that the error is the one
    # line a script reading stderr gets.
    with tqdm.tqdm(inputs, desc="check inputs", unit="image", leave=False, dynamic_ncols=True,
                   disable=True if not progress or len(inputs) < 50 else None) as bar:
        for path in bar:
            read_photo(path)  # fail on a bad file before spending time on the good ones
    config, model, params, step = workdirs.load_trained(workdir, which)
    check_tiling(model.size_multiple, tile=tile, max_pixels=max_pixels, overlap=overlap)
    output_dir.mkdir(parents=True, exist_ok=True)
    apply_fn = infer.model_apply_fn(model, params)
    multiple = math.lcm(COMPILE_MULTIPLE, model.size_multiple)
    with tqdm.tqdm(zip(inputs, outputs), total=len(inputs), desc="deblur", unit="image", dynamic_ncols=True,
                   disable=not progress) as bar:
        for source, target in bar:
            image = read_photo(source)
            height, width = image.shape[:2]
            restored = infer.restore(apply_fn, pad_to_multiple(image, multiple), size_multiple=model.size_multiple,
                                     tile=tile, max_pixels=max_pixels, overlap=overlap, ensemble=ensemble)
            write_png_atomic(target, restored[:height, :width])
    print(f"{len(outputs)} image(s) deblurred with {workdir} (checkpoint {step}) into {output_dir}")
    return outputs


# --- PNG, 8 or 16 bits, every colour type but palette (PNG specification, W3C 2003, sections 5-9) ---

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: gray, gray+alpha, RGB, RGBA
_CHANNELS = {v: k for k, v in _COLOUR_TYPES.items()}


def _png_header(path: pathlib.Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG file, else None."""
    with open(path, "rb") as f:
        head = f.read(26)  # signature, IHDR length and type, width, height, depth, colour type
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", head[16:26])


def _tiff_pixels(path: pathlib.Path) -> int:
    """Height x width of a TIFF file's first page, from its header."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        return page.imagelength * page.imagewidth


def _paeth(a, b, c):
    """The Paeth predictor of int16 arrays: left ``a``, up ``b``, up-left ``c``."""
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(image: np.ndarray, *, level: int = 6) -> bytes:
    """The PNG file of an HxW or HxWxC (C = 1..4) uint8 or uint16 image; every row Paeth-filtered."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in _COLOUR_TYPES or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image: expected HxW or HxWxC (C = 1..4) uint8 or uint16, got {image.shape} {image.dtype}")
    height, width, channels = image.shape
    depth = 8 * image.dtype.itemsize
    # Filters work on bytes: a 16-bit sample is two big-endian bytes of one pixel.
    pixels = image.astype(image.dtype.newbyteorder(">")).view(np.uint8).reshape(height, width, -1).astype(np.int16)
    left, up, up_left = (np.zeros_like(pixels) for _ in range(3))
    left[:, 1:], up[1:], up_left[1:, 1:] = pixels[:, :-1], pixels[:-1], pixels[:-1, :-1]
    filtered = ((pixels - _paeth(left, up, up_left)) & 255).astype(np.uint8).reshape(height, -1)
    rows = np.concatenate([np.full((height, 1), 4, np.uint8), filtered], axis=1)  # 4: Paeth
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOUR_TYPES[channels], 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def decode_png(data: bytes) -> np.ndarray:
    """Decodes a non-interlaced 8- or 16-bit PNG (gray, gray+alpha, RGB, RGBA) into HxW or HxWxC.

    Raises ValueError for a file that is not such a PNG, or is truncated or corrupt.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    position, header, parts = len(PNG_SIGNATURE), None, []
    while True:
        if position + 12 > len(data):
            raise ValueError("PNG file is truncated")
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        crc = data[position + 8 + length:position + 12 + length]
        if len(crc) < 4:
            raise ValueError("PNG file is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"PNG chunk {kind!r} is corrupt (CRC mismatch)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            parts.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    if header is None:
        raise ValueError("PNG file has no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth not in (8, 16) or colour_type not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour_type}, interlace {interlace}")
    channels = _CHANNELS[colour_type]
    pixel_bytes = channels * depth // 8
    raw = zlib.decompress(b"".join(parts))
    if len(raw) != height * (width * pixel_bytes + 1):
        raise ValueError("PNG image data is truncated")
    rows = np.frombuffer(raw, np.uint8).reshape(height, width * pixel_bytes + 1)
    pixels = _unfilter(rows[:, 0], rows[:, 1:].reshape(height, width, pixel_bytes))
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    image = pixels.reshape(height, -1).view(dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
    return image[..., 0] if channels == 1 else image


def _unfilter(filters: np.ndarray, filtered: np.ndarray) -> np.ndarray:
    """Undoes PNG's per-row filters; ``filtered`` is (H, W, bytes per pixel) uint8.

    Each byte depends on its left, upper and upper-left neighbours once these are decoded, so
    the anti-diagonals of pixels are decoded in turn, each in one vectorized operation.
    """
    if filters.size and filters.max() > 4:
        raise ValueError(f"PNG image data is corrupt (filter type {int(filters.max())})")
    height, width, _ = filtered.shape
    out = np.zeros((height + 1, width + 1, filtered.shape[2]), np.int16)  # a zero row above, a zero column left
    raw = filtered.astype(np.int16)
    for diagonal in range(height + width - 1):
        r = np.arange(max(0, diagonal - width + 1), min(diagonal, height - 1) + 1)
        c = diagonal - r
        a, b, up_left = out[r + 1, c], out[r, c + 1], out[r, c]
        kind = filters[r][:, None]
        prediction = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [0, a, b, (a + b) // 2],
                               _paeth(a, b, up_left))
        out[r + 1, c + 1] = (raw[r, c] + prediction) & 255
    return out[1:, 1:].astype(np.uint8)
