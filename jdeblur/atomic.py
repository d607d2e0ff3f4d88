"""Writing a file so that a crash never leaves a half-written one under its final name."""
import json
import pathlib


def write_json(path, data, **dumps_options) -> None:
    """Writes ``data`` as JSON to ``path`` via a temporary file beside it and a rename."""
    path = pathlib.Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, **dumps_options))
    tmp.replace(path)
