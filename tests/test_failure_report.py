"""Failure reports: the user's mistakes and the system's refusals in one line (exit 2), a failed run in
one line (exit 1), a bug in one line naming the file that holds its traceback (exit 1); library output
kept off the terminal meanwhile."""
import errno
import logging
import threading

from jdeblur import failure_report
from jdeblur.errors import RunFailed, UserError


def test_the_users_mistakes_and_the_systems_refusals_are_one_line_and_exit_2(tmp_path):
    assert failure_report.report(UserError("--input a.png: no such file")) == (2, "error: --input a.png: no such file")
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "metrics.jsonl"))
    assert failure_report.report(full, folder=tmp_path / "run") == (
        2, f"error: {tmp_path / 'run' / 'metrics.jsonl'}: no space left on the device; free some space there, or "
           f"choose a folder on another device")
    try:  # a library wrapping it, the file name lost: the command's folder is named
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("commit failed") from e
    except RuntimeError as wrapped:
        code, line = failure_report.report(wrapped, folder=tmp_path / "run")
    assert code == 2 and line.startswith(f"error: {tmp_path / 'run'}: no space left on the device")
    code, line = failure_report.report(PermissionError(errno.EACCES, "Permission denied", "/data/out"))
    assert (code, line) == (2, "error: /data/out: permission denied; expected a path you can write to (or read, "
                               "for an input)")
    assert not list(tmp_path.iterdir())  # no traceback file for the user's errors


def test_a_failed_run_is_one_line_and_exit_1(tmp_path):
    error = RunFailed("non-finite loss or gradients at step 3; training stopped")
    assert failure_report.report(error, folder=tmp_path) == (1, f"error: {error}")
    assert not list(tmp_path.iterdir())


def raise_a_bug():
    {}["missing"]


def test_a_bug_is_one_line_naming_the_file_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        raise_a_bug()
    except KeyError as e:
        bug = e
    code, line = failure_report.report(bug, folder=tmp_path / "run", captured=["WARNING orbax: something"])
    crash = next((tmp_path / "run").glob("crash-*.txt"))
    assert code == 1 and line == (f"error: a bug in jdeblur: KeyError: 'missing' (the full traceback is in {crash}; "
                                  f"please report it with that file)")
    text = crash.read_text()
    assert "Traceback (most recent call last)" in text and "raise_a_bug" in text and "KeyError: 'missing'" in text
    assert "command: " in text and "WARNING orbax: something" in text
    # A workdir that cannot take it (here a file in the way): the user's cache folder.
    (tmp_path / "file").write_text("not a folder")
    _, line = failure_report.report(bug, folder=tmp_path / "file")
    assert f"the full traceback is in {tmp_path / 'cache' / 'jdeblur' / 'crash-'}" in line


def test_library_output_is_kept_off_the_terminal_and_restored_after(capsys):
    before = logging.getLogger().handlers[:], threading.excepthook

    def fail():
        raise OSError("handle is closed")

    with failure_report.quiet_libraries() as captured:
        logging.getLogger("absl").warning("orbax: a warning")
        thread = threading.Thread(target=fail, name="writer")
        thread.start()
        thread.join()
    assert capsys.readouterr().err == ""
    assert any("orbax: a warning" in line for line in captured)
    assert any(line.startswith("exception in writer:") and "handle is closed" in line for line in captured)
    assert (logging.getLogger().handlers[:], threading.excepthook) == before
    with failure_report.quiet_libraries(enabled=False) as captured:
        logging.getLogger("absl").warning("shown with --debug")
    assert captured == []
