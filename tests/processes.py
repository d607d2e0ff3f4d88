"""Other processes in the tests: one that holds a workdir's lock, and waiting for one to end."""
import os
import pathlib
import subprocess
import sys
import time

from jdeblur.config import REPO

HOLD = ("import sys, time; from jdeblur.train import workdir_lock; "
        "lock = workdir_lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)")


def hold_in_another_process(workdir) -> subprocess.Popen:
    """A process that takes the lock of ``workdir`` and sleeps holding it (until killed)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert process.stdout.readline() == "held\n"
    return process


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


def wait_until_dead(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process ``pid`` is gone within ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
