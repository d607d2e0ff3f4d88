"""jdeblur.host_memory: freed memory reused (no page faults) after keep_freed_memory, and when it stays off."""
import pathlib
import subprocess
import sys

import pytest

from jdeblur import host_memory
from jdeblur.errors import UserError

# Allocates, touches and frees a 96 MB block twice through the C library, on a worker thread as XLA
# does, and prints whether the setting was applied and the page faults of the second round.
PROBE = """
import ctypes, resource, sys, threading
from jdeblur import host_memory
host_memory.accelerator_plugins = lambda: []  # as on a CPU-only machine, wherever the test runs
applied = host_memory.keep_freed_memory() if sys.argv[1] == 'keep' else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 96 << 20, []
def round_trip():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
for _ in range(2):
    worker = threading.Thread(target=round_trip)
    worker.start(), worker.join()
print(applied, faults[1])
"""


def probe(mode: str, **env) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env,
                         cwd=pathlib.Path(__file__).resolve().parent.parent).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_freed_memory_is_reused_without_page_faults_once_kept():
    applied, faults = probe("keep", JDEBLUR_HOST_MEMORY="keep")
    assert applied and faults < 100  # 96 MB is 24,576 pages of 4 KB
    assert probe("system") == (False, pytest.approx(24_576, rel=0.1))
    assert probe("keep")[0] is False and probe("keep", JDEBLUR_HOST_MEMORY="system")[0] is False  # opt-in


def test_it_stays_off_with_an_accelerator_plugin_or_a_bad_setting(monkeypatch):
    monkeypatch.setattr(host_memory, "accelerator_plugins", lambda: ["cuda"])
    monkeypatch.setenv(host_memory.ENV, "keep")
    assert host_memory.keep_freed_memory() is False
    monkeypatch.setenv(host_memory.ENV, "never")
    with pytest.raises(UserError, match="JDEBLUR_HOST_MEMORY: expected one of system, keep, got 'never'"):
        host_memory.keep_freed_memory()


def test_the_command_refuses_a_bad_setting_before_it_starts(tmp_path):
    done = subprocess.run([sys.executable, "launch.py", "report", "--root", str(tmp_path)], capture_output=True,
                          text=True, env={"JDEBLUR_HOST_MEMORY": "never"},
                          cwd=pathlib.Path(__file__).resolve().parent.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: environment variable JDEBLUR_HOST_MEMORY: expected one of system, keep, "
                                   "got 'never'")
