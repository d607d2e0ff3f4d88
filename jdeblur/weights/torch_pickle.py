"""PyTorch checkpoint files (``torch.save``) read without PyTorch and without running their code.

A pickle names the functions that rebuild its objects, and unpickling calls them: a ``.pth`` file
can run anything (``os.system`` through ``__reduce__``). ``read_torch_file`` resolves only the
globals a checkpoint of tensors needs, each to a stand-in written here, and refuses any other
with a ``UserError`` naming the file and the global:

- ``torch._utils._rebuild_tensor_v2`` (every dense tensor), ``_rebuild_parameter`` and
  ``_rebuild_parameter_with_state`` (an ``nn.Parameter`` saved as such): a numpy array;
- the storage classes (``torch.FloatStorage``, ``HalfStorage``, ``BFloat16Storage``, ...): the
  dtype of a storage, whose bytes are read from the file as data;
- ``collections.OrderedDict`` (what ``state_dict()`` returns).

Tensors come back as numpy arrays with their dtype (bfloat16 as ``ml_dtypes.bfloat16``); dicts,
lists and tuples as such. Two layouts of ``torch.save`` are read:

- zip (the default since PyTorch 1.6): ``ARCHIVE/data.pkl``, each storage's raw bytes in
  ``ARCHIVE/data/KEY``, and ``ARCHIVE/byteorder`` (absent before PyTorch 2.1: little-endian);
- legacy (``_use_new_zipfile_serialization=False``, or PyTorch < 1.6): in one stream, a magic
  number, a protocol version, the system's byte order, the object, the sorted storage keys, then
  each storage as an int64 element count followed by its bytes.

The tar layout of PyTorch < 0.4 is refused with a message saying so.
"""
import collections
import io
import pathlib
import pickle
import tarfile
import zipfile

import ml_dtypes
import numpy as np

from jdeblur.errors import UserError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "UntypedStorage": np.dtype(np.uint8),
}


class _StorageType:
    """What a storage class global resolves to: the dtype of the storages it names."""

    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class _Storage:
    """A storage's elements (a read-only 1-D array); only ``persistent_load`` makes these."""

    def __init__(self, values: np.ndarray):
        self.values = values


def _malformed(path, what: str) -> UserError:
    return UserError(f"{path}: not a readable PyTorch checkpoint ({what}); expected a file written by torch.save")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a checkpoint of tensors; storages come from ``read_storage``."""

    def __init__(self, file, *, path, read_storage):
        super().__init__(file)
        self._path, self._read_storage = path, read_storage
        self._storages: dict[str, _Storage] = {}
        self._allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
            **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
        }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"{self._path}: refused to load the global {module}.{name}; a checkpoint is read as data, "
                f"so only tensors, storages and (ordered) dicts are allowed") from None

    def persistent_load(self, pid):
        # The zip layout: ('storage', type, key, location, numel); legacy adds view metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise _malformed(self._path, f"unexpected persistent id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise _malformed(self._path, "a storage view of the pre-1.0 legacy format")
        _, storage_type, key, _, numel = pid[:5]
        if key not in self._storages:
            values = self._read_storage(key, storage_type.dtype, numel)
            if values.size != numel:
                raise _malformed(self._path, f"storage {key} holds {values.size} elements, the pickle says {numel}")
            self._storages[key] = _Storage(values)
        return self._storages[key]

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        del requires_grad, hooks, metadata  # training state, not values
        if not isinstance(storage, _Storage) or not _is_int_tuple(size) or not _is_int_tuple(stride) \
                or len(size) != len(stride) or not isinstance(offset, int):
            raise _malformed(self._path, "a tensor whose storage, offset, size or stride is not what torch writes")
        values = storage.values
        if any(n == 0 for n in size):
            return np.zeros(size, values.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or min(stride, default=0) < 0 or min(size) < 0 or last >= values.size:
            raise _malformed(self._path, f"a tensor of size {size} and stride {stride} at offset {offset} "
                                         f"reaches outside its storage of {values.size} elements")
        # A view: the legacy layout stores the bytes after the pickle (``_owned`` copies it later).
        return np.lib.stride_tricks.as_strided(values[offset:], shape=size,
                                               strides=[s * values.itemsize for s in stride], writeable=False)

    def _rebuild_parameter(self, data, requires_grad=False, hooks=None, state=None):
        del requires_grad, hooks, state
        if not isinstance(data, np.ndarray):
            raise _malformed(self._path, "a parameter that is not a tensor")
        return data


def _is_int_tuple(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def read_torch_file(path):
    """The object a ``torch.save`` file holds, with tensors as numpy arrays (see module doc).

    Raises:
      UserError: the file is missing, is not a PyTorch checkpoint, or names a global other than
        those a checkpoint of tensors needs.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected a PyTorch checkpoint (.pth)")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with path.open("rb") as f:
        if f.read(1) == b"\x80":  # a pickle's PROTO opcode: the legacy layout
            f.seek(0)
            return _read_legacy(path, f)
    if tarfile.is_tarfile(path):
        raise UserError(f"{path}: a checkpoint in the tar layout of PyTorch < 0.4 is not supported; "
                        f"expected a file written by torch.save of PyTorch 0.4 or later")
    raise _malformed(path, "neither a zip archive nor a pickle")


def _read_zip(path: pathlib.Path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _malformed(path, f"a zip archive with {len(pickles)} ARCHIVE/data.pkl entries, expected one")
        prefix = pickles[0][: -len("data.pkl")]
        order = archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
        _check_little_endian(path, order == "little")

        def read_storage(key, dtype, numel):
            name = f"{prefix}data/{key}"
            if name not in names:
                raise _malformed(path, f"no entry {name} for a storage the pickle names")
            raw = archive.read(name)
            if len(raw) != numel * dtype.itemsize:
                raise _malformed(path, f"storage {key} has {len(raw)} bytes, expected {numel} x {dtype.itemsize}")
            return np.frombuffer(raw, dtype)

        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path=path, read_storage=read_storage)
        return _owned(_unpickle(unpickler, path))


def _read_legacy(path: pathlib.Path, f):
    header = _RestrictedUnpickler(f, path=path, read_storage=None)
    magic, protocol, sys_info = (_unpickle(header, path) for _ in range(3))
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL or not isinstance(sys_info, dict):
        raise _malformed(path, "a pickle without the magic number of torch.save's legacy layout")
    _check_little_endian(path, sys_info.get("little_endian"))
    requested: dict[str, tuple] = {}

    # The storages' bytes follow the object's pickle: tensors are built as views of empty
    # storages, filled once the bytes are read.
    def read_storage(key, dtype, numel):
        values = np.empty(numel, dtype)
        requested[key] = values
        return values

    obj = _unpickle(_RestrictedUnpickler(f, path=path, read_storage=read_storage), path)
    keys = _unpickle(_RestrictedUnpickler(f, path=path, read_storage=None), path)
    if not isinstance(keys, list) or set(keys) != set(requested):
        raise _malformed(path, "the list of storages does not match the pickle")
    for key in keys:
        values = requested[key]
        count = np.frombuffer(f.read(8), np.dtype("<i8"))
        raw = f.read(values.nbytes)
        if count.size != 1 or int(count[0]) != values.size or len(raw) != values.nbytes:
            raise _malformed(path, f"storage {key} is truncated or of the wrong size")
        values[...] = np.frombuffer(raw, values.dtype)
    return _owned(obj)


def _check_little_endian(path, little: bool) -> None:
    # Every platform PyTorch ships wheels for is little-endian; a big-endian file is refused
    # rather than read through a byte-swapping path that nothing here could test.
    if little is not True or np.little_endian is not True:
        raise UserError(f"{path}: a big-endian checkpoint (or a big-endian machine) is not supported; "
                        f"expected a checkpoint saved on a little-endian machine")


def _owned(obj):
    """``obj`` with every tensor copied out of its storage (tensors are views until the storages are read)."""
    if isinstance(obj, np.ndarray):
        return np.array(obj)
    if isinstance(obj, dict):
        owned = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        owned.update((k, _owned(v)) for k, v in obj.items())
        return owned
    if isinstance(obj, (list, tuple)):
        return type(obj)(_owned(v) for v in obj)
    return obj


def _unpickle(unpickler, path):
    try:
        return unpickler.load()
    except UserError:
        raise
    except Exception as e:  # a truncated or corrupt pickle raises many types; all mean unreadable
        raise _malformed(path, f"{type(e).__name__}: {str(e)[:120]}") from e
