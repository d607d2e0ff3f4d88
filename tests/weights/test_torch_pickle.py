"""Reading PyTorch checkpoints as data: every dtype and layout torch writes, and nothing that runs code."""
import os
import pathlib
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest

from jdeblur.errors import UserError
from jdeblur.weights.safetensors_file import read_safetensors
from jdeblur.weights.torch_pickle import read_torch_file

CHECKPOINTS = pathlib.Path(__file__).parent.parent / "fixtures" / "checkpoints"
# Written by torch (tools/make_nafnet_fixture.py); their values as float32 in dtypes.npz.
DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "transposed": np.float32,
          "view_head": np.float32, "view_tail": np.float32, "parameter": np.float32}


@pytest.mark.parametrize("name", ["dtypes.pth", "dtypes_legacy.pth", "dtypes.safetensors"])
def test_reads_every_dtype_and_view_torch_writes(name):
    path = CHECKPOINTS / name
    tensors = read_safetensors(path)[0] if path.suffix == ".safetensors" else read_torch_file(path)
    expected = np.load(CHECKPOINTS / "dtypes.npz")
    assert set(tensors) == set(DTYPES)
    for key, dtype in DTYPES.items():
        assert tensors[key].dtype == np.dtype(dtype), key
        np.testing.assert_array_equal(tensors[key].astype(np.float32), expected[key], err_msg=key)
        assert tensors[key].flags.writeable  # a copy, not a read-only view of the file's bytes


class _CallsAFunction:
    """Unpickling this runs ``os.system``: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _as_torch_zip(path, payload: bytes) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("container", ["zip", "bare pickle"])
def test_refuses_a_pickle_that_calls_a_function(tmp_path, container):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"params": {"weight": _CallsAFunction(marker)}}, protocol=2)
    path = tmp_path / "evil.pth"
    if container == "zip":
        _as_torch_zip(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(UserError, match=rf"{path}: refused to load the global (posix|os|nt)\.system"):
        read_torch_file(path)
    assert not marker.exists()


def test_refuses_a_checkpoint_with_an_extra_global():
    # Training scripts often save their argparse.Namespace beside the weights.
    path = CHECKPOINTS / "extra_global.pth"
    with pytest.raises(UserError, match=rf"{path}: refused to load the global argparse\.Namespace"):
        read_torch_file(path)


def test_refuses_what_is_not_a_checkpoint(tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((CHECKPOINTS / "dtypes.pth").read_bytes()[:300])
    inside, outside = (_as_torch_zip(tmp_path / f"{n}.pth", _tensor_pickle(size)) for n, size in
                       (("inside", (1, 3)), ("outside", (4, 4))))
    for path in (inside, outside):
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("archive/data/0", np.arange(3, dtype=np.float32).tobytes())
    np.testing.assert_array_equal(read_torch_file(inside), [[0.0, 1.0, 2.0]])
    for path, message in ((tmp_path / "missing.pth", "no such file"), (truncated, "not a readable"),
                          (outside, "reaches outside its storage of 3 elements")):
        with pytest.raises(UserError, match=message):
            read_torch_file(path)


def _tensor_pickle(size) -> bytes:
    """A pickle as torch writes one tensor, but of ``size`` over a 3-element storage (hand-assembled opcodes)."""
    dims = b"".join(b"K" + bytes([n]) for n in size)
    strides = b"K" + bytes([size[1]]) + b"K\x01"
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(("
            b"X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x03tQ"
            b"K\x00(" + dims + b"t(" + strides + b"t\x89ccollections\nOrderedDict\n)RtR.")
