"""The error classes that tell the launcher who is to act: the user, or jdeblur's developers.

The launcher turns a ``UserError`` into one line on stderr (``error: ...``) and exit code 2; a
``RunFailed`` (the run itself failed, e.g. a non-finite loss, and says why) into one line and exit
code 1; any other exception is a bug in jdeblur: exit code 1, one line saying so and where the
full traceback was written (``jdeblur.failure_report``). Disk-full and permission errors of the
operating system count as the user's.

Raise ``UserError`` (or a subclass) wherever an input from the user is wrong: a config value, a
file or folder, a command-line argument. Its message names the input (file, field or value) and
what was expected, on one line. It subclasses ``ValueError`` so that callers (and tests) that
catch the bad-value error of a library function keep working when that function starts raising
this one.
"""


class UserError(ValueError):
    """A mistake in what the user gave; the message names it and what was expected, on one line."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages, e.g. an expected layout, joined)."""
    lines = [" ".join(line.split()) for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and lines[0][-1] not in ".:;,":
        lines[0] += "."
    return " ".join(lines)


class RunFailed(Exception):
    """The run itself failed for a reason its message gives (not a bug, not a bad input): exit code 1."""
