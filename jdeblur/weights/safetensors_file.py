"""``.safetensors`` files read with numpy alone.

The format (huggingface/safetensors, README "Format") is an unsigned little-endian 64-bit header
length N, N bytes of JSON mapping each tensor's name to ``{"dtype", "shape", "data_offsets":
[begin, end]}`` (offsets into the byte buffer that follows; an optional ``"__metadata__"`` maps
strings to strings), then the buffer, little-endian, row-major. Being data only, it needs no
restricted loader. Read here rather than with the ``safetensors`` package: the reader is a few
lines, numpy has no bfloat16 for that package's numpy API (``ml_dtypes`` has), and jdeblur gains
no dependency for it.
"""
import itertools
import json
import math
import pathlib

import ml_dtypes
import numpy as np

from jdeblur.errors import UserError

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
MAX_HEADER_BYTES = 100_000_000  # the format's own limit


def _malformed(path, what: str) -> UserError:
    return UserError(f"{path}: not a readable safetensors file ({what}); expected the layout of "
                     f"huggingface/safetensors")


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file as a numpy array, and the file's ``__metadata__``.

    Raises:
      UserError: the file is missing or not laid out as the format says (a header that is not a
        JSON object, offsets outside the buffer or overlapping, a size that does not match the
        shape, an unknown dtype).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected a .safetensors file")
    data = path.read_bytes()
    if len(data) < 8:
        raise _malformed(path, "shorter than its 8-byte header length")
    header_size = int(np.frombuffer(data[:8], "<u8")[0])
    if header_size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise _malformed(path, f"a header of {header_size} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8:8 + header_size])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _malformed(path, f"the header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise _malformed(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    buffer = memoryview(data)[8 + header_size:]
    tensors, spans = {}, []
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = DTYPES[entry["dtype"]], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _malformed(path, f"tensor {name!r}: entry {str(entry)[:80]}") from None
        if not all(isinstance(v, int) and v >= 0 for v in (*shape, begin, end)):
            raise _malformed(path, f"tensor {name!r}: shape and offsets must be non-negative integers")
        if end - begin != math.prod(shape) * dtype.itemsize or end > len(buffer):
            raise _malformed(path, f"tensor {name!r}: bytes [{begin}, {end}) for shape {list(shape)} of "
                                   f"{entry['dtype']} in a buffer of {len(buffer)}")
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(buffer[begin:end], dtype).reshape(shape).copy()
    spans.sort()
    for (_, first_end, first), (second_begin, _, second) in itertools.pairwise(spans):
        if second_begin < first_end:
            raise _malformed(path, f"tensors {first!r} and {second!r} overlap")
    return tensors, metadata
