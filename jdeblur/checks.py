"""Argument checks shared by the public functions: clear errors that name the argument.

Shapes are static under ``jit``, so rank and size checks always run. Values are only known
outside a trace, so the finiteness and range checks run on concrete arrays and are skipped
(silently, by design) when the function is being traced.

A wrong shape or a non-finite array is a ``ValueError`` (usually a caller's bug); a value out of
its range or not among its choices, and a folder that cannot be written, is a ``UserError``: such
values come from a config field or a command-line argument, which the message names.
"""
import os
import pathlib

import jax
import numpy as np

from jdeblur.errors import UserError


def is_concrete(x) -> bool:
    """Whether ``x`` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def check_real_array(x, name: str) -> None:
    """Raises ValueError unless ``x`` is a non-empty array of real numbers (numpy, JAX, or traced).

    A Python list is refused as ``jax.numpy`` refuses it (convert it with ``np.asarray``), and a
    complex array, which the Fourier filters would reject deep inside with an unnamed error.
    """
    if isinstance(x, (list, tuple)):
        raise ValueError(f"{name}: expected an array (numpy or JAX), got a Python {type(x).__name__}; "
                         f"convert it with np.asarray")
    dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{name}: expected real values, got {dtype}; pass its real part or its magnitude")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ValueError(f"{name}: expected numbers, got dtype {dtype}")
    if np.size(x) == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {tuple(np.shape(x))}")


def check_rank(x, name: str, ranks: tuple[int, ...], layout: str) -> None:
    """Raises ValueError unless ``x.ndim`` is one of ``ranks``; ``layout`` describes the expected axes."""
    if np.ndim(x) not in ranks:
        raise ValueError(
            f"{name}: expected {layout} (rank {' or '.join(map(str, ranks))}), "
            f"got shape {tuple(np.shape(x))}"
        )


def check_finite(x, name: str) -> None:
    """Raises ValueError if a concrete ``x`` holds NaN or Inf."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name}: expected finite values, got NaN or Inf")


def check_positive(value, name: str, *, allow_zero: bool = False) -> None:
    """Raises UserError if a concrete scalar or array ``value`` is negative (or zero unless allowed)."""
    if not is_concrete(value):
        return
    v = np.asarray(value)
    bad = np.any(v < 0) if allow_zero else np.any(v <= 0)
    if bad or not np.all(np.isfinite(v)):
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{name}: expected a finite value {bound}, got {v.tolist()}")


def check_choice(value, name: str, choices) -> None:
    """Raises UserError unless ``value`` is one of ``choices``, listing them."""
    if value not in choices:
        raise UserError(f"{name}: expected one of {sorted(choices)}, got {value!r}")


def check_integer(value, name: str, least: int) -> None:
    """Raises UserError unless ``value`` is an integer (not a bool) >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise UserError(f"{name}: expected an integer >= {least}, got {value!r}")


def check_folder_writable(path, name: str) -> None:
    """Raises UserError naming ``name`` unless ``path`` is a writable folder or could be created as one.

    Nothing is created: the check looks at the nearest existing ancestor.
    """
    path = pathlib.Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is not a folder" if existing == path else f"cannot be created: {existing} is not a folder"
        raise UserError(f"{name} {path}: {where}; expected a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
        raise UserError(f"{name} {path}: {where}; expected a folder you can write to")
