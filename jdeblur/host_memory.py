"""Host memory on a CPU-only machine: memory XLA frees is kept for its next step, not returned to the OS.

Why: XLA:CPU allocates the temporaries of each execution as one block and frees it when the
execution ends: 49 MB for NAFNet width 32's forward pass at 256x256, about 740 MB for its training
step on 2x128x128. glibc serves a block above its mmap threshold (32 MB at most, by default) with
fresh pages from the OS, and the arena of a worker thread cannot hold a block above 64 MB at all, so
every execution faulted its temporaries in page by page again: 181,000 page faults and 0.4-0.6 s of
kernel time per NAFNet training step on this project's 2-core machine, 54,000 per step of the
default (two-stage blind) experiment. PyTorch's tensors are each under the threshold and reuse
freed memory.

``keep_freed_memory()`` does two things:
- it asks glibc (``mallopt``) to serve blocks of every size from its heap and never to give freed
  memory back, so the next execution reuses the same pages;
- it makes JAX execute CPU computations in the calling thread (``jax_cpu_enable_async_dispatch``
  off), whose heap is the main one, the only one that can hold such a block: dispatched to a worker
  thread, the block was still mapped afresh each time.
Measured in ``benchmarks/README.md`` (separate processes, page faults per training step
181,000 -> 0 and 54,500 -> 0; NAFNet's 2x128x128 step 842 -> 612 ms, the blind experiment's
431-450 -> 369-394 ms). An earlier version put every thread on one malloc arena instead of the
second change, and the blind step then ran no faster than without it (480 / 398 ms), so it was
opt-in; this one is the default.

The price: the process keeps its peak memory until it exits, and Python waits for each CPU
computation (no running ahead; on a CPU the computation has the cores anyway). The ``jdeblur``
command applies it unless ``JDEBLUR_HOST_MEMORY=system``, and only where XLA runs on the CPU (no
accelerator plugin installed: JAX's ``jax_plugins`` entry points, ``libtpu``). It must run before
JAX's first computation creates the CPU client; a library user calls it first thing.
"""
import ctypes
import importlib.metadata
import importlib.util
import os
import platform

from jdeblur.errors import UserError

ENV = "JDEBLUR_HOST_MEMORY"  # 'keep' (the default) or 'system' (the C library's allocator as it is)
CHOICES = ("keep", "system")
# mallopt's parameters (glibc's malloc.h), and the largest value an int argument takes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_NEVER = 2**31 - 1


def accelerator_plugins() -> list[str]:
    """The accelerator backends JAX may find here: its PJRT plugins' entry points, and libtpu."""
    names = [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
    return names + (["libtpu"] if importlib.util.find_spec("libtpu") else [])


def keep_freed_memory() -> bool:
    """Keeps freed memory for XLA's next execution on a CPU-only machine (module docstring); True if it did.

    Does nothing (False) with ``JDEBLUR_HOST_MEMORY=system``, off glibc, or with an accelerator
    plugin installed; raises UserError for another value of that variable.
    """
    choice = os.environ.get(ENV, "keep")
    if choice not in CHOICES:
        raise UserError(f"environment variable {ENV}: expected one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "system" or platform.libc_ver()[0] != "glibc" or accelerator_plugins():
        return False
    import jax  # importing JAX starts no computation; its CPU client is made at the first one

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Each returns 1 when glibc took the value; both or the setting does not hold.
    return all(mallopt(parameter, _NEVER) == 1 for parameter in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD))
