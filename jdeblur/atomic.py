"""Every file jdeblur writes goes through here: whole or not at all, and never through a symlink.

``replacing`` writes to a fresh temporary file that it creates exclusively in the target's folder
(``tempfile.mkstemp``: ``O_CREAT | O_EXCL``, and ``O_NOFOLLOW`` where the OS has it, with a random
name), then renames it over the target with ``os.replace``. So:

- a kill mid-write leaves the old file (or none) under the final name, never a torn one, and at
  worst a ``NAME.XXXXXXXX.tmp`` file beside it;
- a symlink planted beside the target cannot redirect the write (the temporary name is new and
  created exclusively), and a symlink at the target's own name is replaced, not written through.

``new_folder`` does the same for a folder of files written together (an evaluation set's draws):
a fresh private folder (``mkdtemp``) renamed to its final name once complete.

``append_line`` adds a line to a JSON-lines log (opened with ``O_NOFOLLOW``: a symlink there is an
error, not a redirection). Readers of those logs skip a last line a kill tore
(``jdeblur.train.logger.read_jsonl``). ``read_json`` reads a JSON file back, naming the file when it
does not parse (cut short by a full disk, or edited by hand).
"""
import contextlib
import json
import os
import pathlib
import shutil
import stat
import tempfile

from jdeblur.errors import UserError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _umask() -> int:
    """The process's umask, read without changing it where the OS says (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: pathlib.Path) -> int:
    """The permissions a new ``path`` gets: those of the regular file it replaces, else 0o666 less the umask
    (``mkstemp`` creates 0o600, which would hide results from the user's group)."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        pass
    return 0o666 & ~_umask()


@contextlib.contextmanager
def replacing(path, mode: str = "w", **open_options):
    """Yields a file object open on a fresh temporary file beside ``path``; renames it to ``path`` when the
    block succeeds.

    Args:
      mode: ``open``'s mode, ``"w"`` (text) or ``"wb"``.
      **open_options: more of ``open``'s options (``newline``, ``encoding``).

    An exception inside the block removes the temporary file and leaves ``path`` as it was. The
    data is flushed to disk before the rename, so a power cut leaves the old file or the new one.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: expected 'w' or 'wb', got {mode!r}")
    path = pathlib.Path(path)
    descriptor, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, _mode_for(path))
        with os.fdopen(descriptor, mode, **open_options) as f:
            descriptor = None  # the file object owns it now
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    except BaseException:
        if descriptor is not None:
            os.close(descriptor)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


@contextlib.contextmanager
def new_folder(path):
    """Yields a fresh folder beside ``path`` to fill; renames it to ``path`` when the block succeeds.

    ``path`` appears whole or not at all. If a folder is there by then (another process made the
    same one first), that one is kept and this one removed; an exception removes this one.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent))
    try:
        yield scratch
        os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp makes it 0o700
        try:
            os.replace(scratch, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_bytes(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see ``replacing``)."""
    with replacing(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see ``replacing``)."""
    with replacing(path) as f:
        f.write(text)


def write_json(path, data, **dumps_options) -> None:
    """Writes ``data`` as JSON to ``path`` atomically (see ``replacing``)."""
    write_text(path, json.dumps(data, **dumps_options))


def read_json(path):
    """The data of the JSON file ``path``; raises UserError naming the file when it does not parse."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:  # UnicodeDecodeError too is a ValueError, but names no line
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno}); expected the "
                        f"complete file jdeblur wrote (cut short, or edited?): restore or remove it") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a text file ({e.reason}); expected the JSON file jdeblur wrote") from e


def append_line(path, line: str) -> None:
    """Appends ``line`` and a newline to ``path`` (created if missing), refusing to follow a symlink there."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    with os.fdopen(descriptor, "a") as f:
        f.write(line + "\n")
