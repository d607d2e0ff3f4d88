"""safetensors files read with numpy, and state dicts found inside the wrappers training code saves."""
import json
import pathlib

import numpy as np
import pytest

from jdeblur.errors import UserError
from jdeblur.weights.safetensors_file import read_safetensors
from jdeblur.weights.state_dict import load_state_dict, sha256_of

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"


def write_safetensors(path, header: dict, buffer: bytes) -> pathlib.Path:
    """The format by hand: 8-byte little-endian header length, the JSON header, the buffer."""
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + buffer)
    return path


def test_reads_tensors_metadata_and_strips_data_parallel_prefix(tmp_path, rng):
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.integers(0, 9, 4).astype(np.int64)
    header = {"__metadata__": {"format": "pt"},
              "module.a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "module.b": {"dtype": "I64", "shape": [4], "data_offsets": [24, 56]},
              "module.empty": {"dtype": "F16", "shape": [0, 5], "data_offsets": [56, 56]}}
    path = write_safetensors(tmp_path / "w.safetensors", header, a.tobytes() + b.tobytes())
    tensors, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"} and tensors["module.empty"].shape == (0, 5)
    np.testing.assert_array_equal(tensors["module.a"], a)
    np.testing.assert_array_equal(tensors["module.b"], b)
    loaded = load_state_dict(path)
    assert set(loaded.tensors) == {"a", "b", "empty"} and loaded.format == "safetensors"
    assert loaded.sha256 == sha256_of(path) and len(loaded.sha256) == 64


@pytest.mark.parametrize("header, buffer, message", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(8), "for shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(4), "in a buffer of 4"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "overlap"),
    ({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, bytes(1), "entry"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "non-negative"),
    ([1, 2], b"", "not a JSON object"),
], ids=["size", "buffer", "overlap", "dtype", "negative", "not-an-object"])
def test_malformed_files_are_named(tmp_path, header, buffer, message):
    path = write_safetensors(tmp_path / "bad.safetensors", header, buffer)
    with pytest.raises(UserError, match=f"{path}: not a readable safetensors file.*{message}"):
        read_safetensors(path)


def test_basicsr_wrapper_and_param_key():
    path = FIXTURES / "nafnet" / "official.pth"
    found = load_state_dict(path)  # BasicSR saves {'params': state_dict}
    assert found.key == "params" and found.format == "pytorch" and "intro.weight" in found.tensors
    assert load_state_dict(path, key="params").tensors.keys() == found.tensors.keys()
    with pytest.raises(UserError, match=r"--param-key params_ema: not in .*'params'"):
        load_state_dict(path, key="params_ema")
    with pytest.raises(UserError, match="no wrapper keys"):
        load_state_dict(FIXTURES / "nafnet" / "official.safetensors", key="params")
