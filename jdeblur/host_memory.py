"""Host memory on a CPU-only machine: memory XLA frees is kept for its next step, not returned to the OS.

Why: XLA:CPU allocates the temporaries of each execution as one block and frees it when the
execution ends: 49 MB for NAFNet width 32's forward pass at 256x256, about 740 MB for its training
step on 2x128x128. glibc serves a block above its mmap threshold (32 MB at most, by default) with
fresh pages from the OS, and the arena of a worker thread cannot hold a block above 64 MB at all, so
every execution faulted its temporaries in page by page again: 181,000 page faults and 0.4-0.7 s of
kernel time per NAFNet training step on this project's 2-core machine, 13,000 faults per forward pass.
PyTorch's tensors are each under the threshold and reuse freed memory.

``keep_freed_memory()`` asks glibc (``mallopt``) to serve every allocation from one arena's heap,
whatever its size, and never to give freed memory back: the step then reuses its pages (0 faults
per step). Measured in ``benchmarks/README.md`` (NAFNet training step 1505 -> 1119 ms, forward pass
340 -> 185 ms, in separate processes at load 3).
The price: the process keeps its peak memory until it exits, and every thread allocates from one
arena; and it does not pay for every model: the two-stage blind model's training step (the default
experiment's) ran 1.15x slower with it (436-525 against 372-460 ms). So it is opt-in: the ``jdeblur``
command applies it with ``JDEBLUR_HOST_MEMORY=keep``, and only where XLA runs on the CPU (no
accelerator plugin installed: JAX's ``jax_plugins`` entry points, ``libtpu``).
It must run before JAX's first computation starts XLA's threads; a library user calls it first
thing, or sets glibc's variables instead:
``MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647``.
"""
import ctypes
import importlib.metadata
import importlib.util
import os
import platform

from jdeblur.errors import UserError

ENV = "JDEBLUR_HOST_MEMORY"  # 'system' (the default: the C library's allocator as it is) or 'keep'
CHOICES = ("system", "keep")
# mallopt's parameters (glibc's malloc.h), and the largest value an int argument takes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_NEVER = 2**31 - 1


def accelerator_plugins() -> list[str]:
    """The accelerator backends JAX may find here: its PJRT plugins' entry points, and libtpu."""
    names = [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
    return names + (["libtpu"] if importlib.util.find_spec("libtpu") else [])


def keep_freed_memory() -> bool:
    """Sets glibc to reuse freed memory for every allocation size (module docstring); True if it did.

    Does it only with ``JDEBLUR_HOST_MEMORY=keep``; does nothing (False) otherwise, off glibc, or
    with an accelerator plugin installed.
    """
    choice = os.environ.get(ENV, "system")
    if choice not in CHOICES:
        raise UserError(f"environment variable {ENV}: expected one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "system" or platform.libc_ver()[0] != "glibc" or accelerator_plugins():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Each returns 1 when glibc took the value; all three or the setting does not hold.
    return all(mallopt(parameter, value) == 1 for parameter, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _NEVER), (_M_TRIM_THRESHOLD, _NEVER)))
