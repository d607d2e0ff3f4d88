"""Writing a file so that a crash never leaves a half-written one under its final name."""
import contextlib
import json
import pathlib


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside ``path``; renames it to ``path`` when the block succeeds.

    A kill mid-write leaves at most ``<name>.tmp`` behind, never a torn ``path``; an exception
    removes the temporary file and leaves ``path`` as it was.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temporary file beside it and a rename."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path, data, **dumps_options) -> None:
    """Writes ``data`` as JSON to ``path`` via a temporary file beside it and a rename."""
    write_text(path, json.dumps(data, **dumps_options))
