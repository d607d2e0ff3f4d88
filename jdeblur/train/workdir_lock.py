"""One trainer per workdir: an OS lock on ``WORKDIR/train.lock`` held for the whole of training.

Two trainers in one workdir interleave their logs and checkpoints and kill each other in orbax;
the second is refused instead, naming the workdir and the PID of the one that holds it. The
lock is ``fcntl.flock`` on an open file: the kernel drops it when the holding process ends, however
it ends (``kill -9`` included), so a leftover ``train.lock`` file is never stale, only unlocked.
The file is opened close-on-exec, so a program the trainer starts does not keep the lock alive.

Readers (``eval``, ``deblur``) take no lock: they read committed checkpoints, which orbax writes
to a temporary folder and renames whole.

Several hosts: process 0 alone takes the lock (the others write nothing in the workdir); a second
multi-host launch is refused by its process 0. On network file systems, ``flock`` is only as
good as the file system's lock support (NFSv4 and Lustre with ``flock`` mounted have it).
Windows has no ``fcntl``: there the lock is not taken (a warning says so).
"""
import os
import pathlib
import warnings

import jax

from jdeblur.errors import UserError

LOCK_FILE = "train.lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class WorkdirBusyError(UserError):
    """Another process is training in the workdir."""


class WorkdirLock:
    """The held lock of one workdir; ``release()`` (or the end of the process) lets the next trainer in."""

    def __init__(self, descriptor: int | None):
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the last descriptor drops the flock
            self._descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def holder(workdir) -> int | None:
    """The PID written in the workdir's lock file by the trainer holding it, if any and readable."""
    try:
        text = (pathlib.Path(workdir) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire(workdir) -> WorkdirLock:
    """Locks ``workdir`` (an existing folder) for this process's training.

    Raises:
      WorkdirBusyError: another process holds the lock; the message names the workdir and its PID.
    """
    if jax.process_index() != 0:
        return WorkdirLock(None)
    if fcntl is None:
        warnings.warn("this platform has no fcntl: the workdir is not locked against a second trainer",
                      stacklevel=2)
        return WorkdirLock(None)
    path = pathlib.Path(workdir) / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        pid = holder(workdir)
        by = f"process {pid}" if pid else "another process"
        raise WorkdirBusyError(
            f"--workdir {pathlib.Path(workdir)}: {by} is training in it; expected a workdir no other "
            f"trainer uses (wait for it to finish, stop it, or choose another --workdir)") from None
    except BaseException:
        os.close(descriptor)
        raise
    # The PID, for the message a second trainer prints; the lock itself is the flock, not this text.
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return WorkdirLock(descriptor)
