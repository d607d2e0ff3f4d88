"""Running ``launch.py`` as a user does (a subprocess in the checkout, or ``jdeblur.cli.main`` in this
process), and the check of a usage error."""
import subprocess
import sys

from jdeblur import cli
from jdeblur.config import REPO

QUICKSTART_LOCAL = "experiments/quickstart.py:runlocal"


def launch_py(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launch.py", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def assert_usage_error(result, *fragments):
    """Exit code 2 and exactly one line on stderr, ``error: ...``, holding every fragment; no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def usage_error_in_process(capsys, *argv) -> str:
    """``cli.main(argv)`` in this process: exit code 2 and one line ``error: ...`` on stderr (returned)."""
    code = cli.main([str(a) for a in argv])
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]
