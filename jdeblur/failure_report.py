"""How a failed command is reported: the user's mistake in one line, a bug with its traceback in a file.

``report(error, ...)`` gives the exit code and the one line to print (see ``jdeblur.errors``):

- a ``UserError``, or the operating system refusing a write for lack of space (``ENOSPC``,
  ``EDQUOT``) or of rights (``EACCES``, ``EPERM``, ``EROFS``), anywhere in the exception's chain:
  ``error: ...`` naming the input or the path, exit code 2;
- a ``RunFailed`` (the run failed and says why, e.g. a non-finite loss): its message, exit code 1;
- anything else is a bug in jdeblur: exit code 1, and the line says so and names the file holding
  the full traceback (``crash-TIME-PID.txt`` in the command's workdir, else in
  ``$XDG_CACHE_HOME/jdeblur`` or ``~/.cache/jdeblur``), with the library output captured below.

``quiet_libraries()`` keeps the libraries' output off the terminal while a command runs: log
records (orbax, absl, grain, tensorflow-datasets), exceptions in background threads (orbax's
save threads, tensorboard's writer) and "Exception ignored" messages go to a buffer that a bug
report includes. ``--debug`` turns this off and shows the traceback instead of the report.
"""
import contextlib
import datetime
import errno
import logging
import os
import pathlib
import platform
import shlex
import sys
import threading
import traceback

from jdeblur.errors import RunFailed, UserError, one_line

USAGE_EXIT = 2  # the user has to change something (argparse uses 2 too)
FAILURE_EXIT = 1  # the run failed, or jdeblur has a bug
SYSTEM_REFUSALS = {
    errno.ENOSPC: "no space left on the device; free some space there, or choose a folder on another device",
    errno.EDQUOT: "disk quota exceeded; free some space there, or choose a folder on another device",
    errno.EACCES: "permission denied; expected a path you can write to (or read, for an input)",
    errno.EPERM: "operation not permitted; expected a path you can write to (or read, for an input)",
    errno.EROFS: "read-only file system; expected a path on a writable file system",
}
MESSAGE_LIMIT = 400  # characters of a bug's message on its one line; the file has all of it


def system_refusal(error: BaseException) -> OSError | None:
    """The disk-full or permission ``OSError`` in ``error``'s chain (itself, its cause or context), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in SYSTEM_REFUSALS:
            return error
        error = error.__cause__ or error.__context__
    return None


def report(error: BaseException, *, folder=None, captured=()) -> tuple[int, str]:
    """The exit code and the one line to print for a command that raised ``error``.

    Args:
      folder: the folder the command works in (its workdir or root), if known: named when the
        operating system's error names no file, and where a bug's traceback is written first.
      captured: library output kept off the terminal (``quiet_libraries``), for a bug's report.
    """
    if isinstance(error, UserError):
        return USAGE_EXIT, f"error: {one_line(error)}"
    refusal = system_refusal(error)
    if refusal is not None:
        path = refusal.filename or folder or "a file jdeblur writes"
        return USAGE_EXIT, f"error: {path}: {SYSTEM_REFUSALS[refusal.errno]}"
    if isinstance(error, RunFailed):
        return FAILURE_EXIT, f"error: {one_line(error)}"
    message = one_line(error)
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "..."
    path = write_traceback(error, folders=[folder] if folder else [], captured=captured)
    where = (f"the full traceback is in {path}; please report it with that file" if path else
             "the traceback could not be written to a file; rerun with --debug to see it")
    return FAILURE_EXIT, f"error: a bug in jdeblur: {type(error).__name__}: {message} ({where})"


def crash_folders(folders) -> list[pathlib.Path]:
    """Where a traceback may go, in order: the given folders, then jdeblur's folder in the user's cache."""
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache").expanduser()
    return [pathlib.Path(f) for f in folders] + [cache / "jdeblur"]


def write_traceback(error: BaseException, *, folders=(), captured=()) -> pathlib.Path | None:
    """Writes the command, the versions, ``error``'s full traceback and the ``captured`` library output
    to ``crash-TIME-PID.txt`` in the first of ``crash_folders(folders)`` that takes it; returns its path."""
    from jdeblur import __version__
    from jdeblur.atomic import write_text

    now = datetime.datetime.now()
    text = "\n".join([
        f"jdeblur {__version__} failed at {now.isoformat(timespec='seconds')}",
        f"command: {shlex.join(sys.argv)}",
        f"python {platform.python_version()} on {platform.platform()}",
        "",
        "".join(traceback.format_exception(error)),
        *(["library output kept off the terminal:", *captured] if captured else []),
    ])
    name = f"crash-{now:%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    for folder in crash_folders(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / name, text + "\n")
        except OSError:
            continue
        return folder / name
    return None


class _Capture(logging.Handler):
    """Keeps formatted log records (and thread/unraisable tracebacks) in memory, the newest ``limit``."""

    def __init__(self, limit: int = 2000):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.limit = limit
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def add(self, text: str) -> None:
        self.lines.append(text.rstrip("\n"))
        del self.lines[:-self.limit]

    def emit(self, record: logging.LogRecord) -> None:
        self.add(self.format(record))


@contextlib.contextmanager
def quiet_libraries(enabled: bool = True, *, until_exit: bool = False):
    """Within the block, the libraries' log records, background threads' exceptions and "Exception
    ignored" messages are kept in the yielded list instead of printed; restored after the block, or
    never with ``until_exit`` (a command-line process: libraries' exit handlers, e.g. tensorboard's
    flush to a full disk, stay quiet too)."""
    capture = _Capture()
    if not enabled:
        yield capture.lines
        return
    root = logging.getLogger()
    saved = root.handlers[:], root.level, threading.excepthook, sys.unraisablehook
    for handler in saved[0]:
        root.removeHandler(handler)
    root.addHandler(capture)
    root.setLevel(logging.INFO)

    def thread_exception(args):
        name = args.thread.name if args.thread is not None else "a thread"
        capture.add(f"exception in {name}:\n" + "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))

    def unraisable(info):
        capture.add(f"{info.err_msg or 'exception ignored'}: {info.object!r}\n" + "".join(
            traceback.format_exception(info.exc_type, info.exc_value, info.exc_traceback)))

    threading.excepthook, sys.unraisablehook = thread_exception, unraisable
    try:
        yield capture.lines
    finally:
        if not until_exit:
            root.removeHandler(capture)
            for handler in saved[0]:
                root.addHandler(handler)
            root.setLevel(saved[1])
            threading.excepthook, sys.unraisablehook = saved[2], saved[3]
