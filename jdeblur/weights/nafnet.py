"""The official NAFNet's parameters (megvii-research/NAFNet, ``NAFNet_arch.py``) as jdeblur's NAFNet's.

Names: the official modules are lists (``encoders.L.i``, ``downs.L``, ``middle_blks.i``,
``ups.L.0``, ``decoders.L.i``, a block's ``sca.1``), jdeblur's are named (``encL_blocki``,
``downL``, ``middle_blocki``, ``upL``, ``decL_blocki``, ``sca``); ``LayerNorm2d``'s ``weight`` is
Flax's ``scale``. Layouts: convolution weights are OIHW there and HWIO here (the depthwise one is
(C, 1, 3, 3) there and (3, 3, 1, C) here: the same transpose); ``beta`` and ``gamma`` are
(1, C, 1, 1) there and (C,) here. The up-convolution's output channels are read by a pixel
shuffle with PyTorch's channel order (``jdeblur.models.layers.pixel_shuffle``), so they keep
their order.

The expected names and shapes are derived from jdeblur's parameter tree for the configured
variant, so a checkpoint of another width or depth is caught by name or shape, both ways. That
tree has one subtree per block whatever the model's ``kernels``: on CPU the model stacks a run of
blocks' parameters itself when it scans them, so one conversion serves every backend.
"""
import re

import jax
import numpy as np

from jdeblur.errors import UserError

_BLOCK = re.compile(r"^(enc|dec)(\d+)_block(\d+)$")
_MIDDLE = re.compile(r"^middle_block(\d+)$")
_LEVEL = re.compile(r"^(down|up)(\d+)$")
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias"}


def official_name(path: tuple[str, ...]) -> str:
    """The official state-dict name of the jdeblur parameter at ``path`` (e.g. ('enc0_block0', 'sca', 'kernel'))."""
    top, *rest = path
    if match := _BLOCK.match(top):
        kind, level, index = match.groups()
        prefix = f"{'encoders' if kind == 'enc' else 'decoders'}.{level}.{index}"
    elif match := _MIDDLE.match(top):
        prefix = f"middle_blks.{match.group(1)}"
    elif match := _LEVEL.match(top):
        kind, level = match.groups()
        prefix = f"downs.{level}" if kind == "down" else f"ups.{level}.0"
    elif top in ("intro", "ending"):
        prefix = top
    else:
        raise ValueError(f"no official NAFNet name for the parameter {'/'.join(path)}")
    if rest in (["beta"], ["gamma"]):
        return f"{prefix}.{rest[0]}"
    *modules, leaf = rest
    modules = ["sca.1" if m == "sca" else m for m in modules]
    return ".".join([prefix, *modules, _LEAF[leaf]])


def _to_jdeblur(name: str, value: np.ndarray, ndim: int) -> np.ndarray:
    """An official tensor in jdeblur's layout (``ndim``: the rank of jdeblur's parameter)."""
    if value.ndim == 4 and ndim == 4:
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if name.endswith((".beta", ".gamma")) and value.ndim == 4:
        return value.reshape(-1)
    return value


def _official_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the official checkpoint has for a jdeblur parameter of ``shape``."""
    if len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    if name.endswith((".beta", ".gamma")):
        return (1, shape[0], 1, 1)
    return tuple(shape)


def convert(tensors: dict[str, np.ndarray], abstract_params, *, source: str):
    """jdeblur NAFNet parameters (``abstract_params``' tree, shapes and dtypes) from an official state dict.

    Raises:
      UserError: naming every tensor that is missing from the checkpoint, extra in it, or of
        another shape than the configured model needs.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract_params)
    names = [official_name(tuple(k.key for k in path)) for path, _ in leaves]
    expected = {name: _official_shape(name, leaf.shape) for name, (_, leaf) in zip(names, leaves)}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    misshaped = sorted(f"{name} {tuple(tensors[name].shape)} (expected {expected[name]})"
                       for name in set(expected) & set(tensors) if tuple(tensors[name].shape) != expected[name])
    problems = [f"{label} ({len(items)}): {_listing(items)}"
                for label, items in (("missing", missing), ("extra", extra), ("wrong shape", misshaped)) if items]
    if problems:
        raise UserError(f"{source}: does not fit the configured NAFNet ({len(expected)} tensors); "
                        + "; ".join(problems) + ". Expected an official NAFNet checkpoint of the same width "
                        "and block numbers as config.model")
    values = [np.asarray(_to_jdeblur(name, tensors[name], leaf.ndim), leaf.dtype)
              for name, (_, leaf) in zip(names, leaves)]
    return jax.tree_util.tree_unflatten(treedef, values)


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
