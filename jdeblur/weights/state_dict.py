"""A checkpoint file from elsewhere as a flat ``{name: numpy array}`` state dict, whatever wraps it.

Training code saves the state dict inside a wrapper: BasicSR (NAFNet, Restormer) saves
``{'params': state_dict}`` (and ``'params_ema'`` when it keeps an average), others
``{'state_dict': ...}`` or ``{'model': ...}``; ``nn.DataParallel`` prefixes every name with
``module.``. ``load_state_dict`` finds the tensors in any of these, or takes the key it is given.
"""
import hashlib
import pathlib
from typing import NamedTuple

import numpy as np

from jdeblur.errors import UserError
from jdeblur.weights.safetensors_file import read_safetensors
from jdeblur.weights.torch_pickle import read_torch_file

# Tried in this order when the file's top level is a dict of wrappers; BasicSR's loader defaults to 'params'.
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model", "net")
_SAFETENSORS_SUFFIX = ".safetensors"


class StateDict(NamedTuple):
    """The tensors of a checkpoint and where they came from."""

    tensors: dict[str, np.ndarray]
    path: str
    sha256: str
    format: str  # 'pytorch' or 'safetensors'
    key: str | None  # the wrapper key the tensors were under, if any


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path, *, key: str | None = None) -> StateDict:
    """Reads a ``.pth``/``.pt``/``.ckpt`` (restricted unpickler) or ``.safetensors`` file's tensors.

    Args:
      path: the checkpoint file.
      key: the entry of a wrapping dict that holds the tensors (e.g. ``'params_ema'``); None
        takes the first of ``WRAPPER_KEYS`` present, or the top level when it holds the tensors.

    Raises:
      UserError: unreadable file, no tensors where expected, or an entry that is not a tensor.
    """
    path = pathlib.Path(path)
    if path.suffix == _SAFETENSORS_SUFFIX:
        if key is not None:
            raise UserError(f"--param-key {key}: a safetensors file holds one flat set of tensors, no wrapper keys")
        tensors, _ = read_safetensors(path)
        return StateDict(_strip_prefix(tensors), str(path), sha256_of(path), "safetensors", None)
    obj = read_torch_file(path)
    tensors, key = _unwrap(obj, key, path)
    return StateDict(_strip_prefix(tensors), str(path), sha256_of(path), "pytorch", key)


def _unwrap(obj, key, path):
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}, expected a dict of tensors (a state dict)")
    if key is not None:
        if key not in obj:
            raise UserError(f"--param-key {key}: not in {path}; its keys are {sorted(map(str, obj))}")
        found = obj[key]
    elif obj and all(isinstance(v, np.ndarray) for v in obj.values()):
        found = obj
    else:
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            raise UserError(f"{path}: no state dict found; its keys are {sorted(map(str, obj))[:10]}, expected "
                            f"tensors, or one of {list(WRAPPER_KEYS)} holding them (or name it with --param-key)")
        found = obj[key]
    where = f"{path}[{key!r}]" if key is not None else str(path)
    if not isinstance(found, dict) or not found:
        raise UserError(f"{where}: expected a non-empty dict of tensors, got {type(found).__name__}")
    bad = sorted(str(k) for k, v in found.items() if not isinstance(v, np.ndarray) or not isinstance(k, str))
    if bad:
        raise UserError(f"{where}: entries that are not named tensors: {', '.join(bad[:5])}"
                        + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return dict(found), key


def _strip_prefix(tensors: dict) -> dict:
    """Drops ``nn.DataParallel``'s ``module.`` prefix when every name carries it."""
    prefix = "module."
    if all(name.startswith(prefix) for name in tensors):
        return {name[len(prefix):]: value for name, value in tensors.items()}
    return tensors
