"""A small PNG codec for what Pillow cannot do: 16-bit colour (RGB, RGBA, gray+alpha) read and written.

8 or 16 bits, every colour type but palette, non-interlaced (PNG specification, W3C 2003,
sections 5-9). ``encode_png`` also writes a colour profile (``iCCP``) and an EXIF block (``eXIf``,
PNG specification third edition), so that a 16-bit result keeps its input's metadata as an 8-bit
one written by Pillow does.
"""
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: gray, gray+alpha, RGB, RGBA
_CHANNELS = {v: k for k, v in _COLOUR_TYPES.items()}


def png_header(path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) of a PNG file, else None."""
    with open(path, "rb") as f:
        head = f.read(26)  # signature, IHDR length and type, width, height, depth, colour type
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", head[16:26])


def _paeth(a, b, c):
    """The Paeth predictor of int16 arrays: left ``a``, up ``b``, up-left ``c``."""
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(image: np.ndarray, *, level: int = 6, icc_profile: bytes | None = None,
               exif: bytes | None = None) -> bytes:
    """The PNG file of an HxW or HxWxC (C = 1..4) uint8 or uint16 image; every row Paeth-filtered.

    Args:
      icc_profile: an ICC colour profile to embed (``iCCP``), e.g. the input photo's.
      exif: an EXIF block to embed (``eXIf``): TIFF-structured, with or without the ``Exif\\0\\0``
        prefix JPEG files carry (it is dropped, as PNG wants).
    """
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
    metadata = b""
    if icc_profile:  # profile name, a null, compression method 0 (zlib), the compressed profile
        metadata += _chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile))
    if exif:
        metadata += _chunk(b"eXIf", exif.removeprefix(b"Exif\0\0"))
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + metadata
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


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
