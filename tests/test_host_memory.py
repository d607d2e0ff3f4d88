"""jdeblur.host_memory: XLA's temporaries reused (no page faults) after keep_freed_memory, and when it stays off."""
import pathlib
import subprocess
import sys

import pytest

from jdeblur import host_memory
from jdeblur.errors import UserError

# Runs a jitted function with 192 MB of temporaries six times and prints whether the setting was
# applied and the page faults of each call after the first.
PROBE = """
import resource
from jdeblur import host_memory
host_memory.accelerator_plugins = lambda: []  # as on a CPU-only machine, wherever the test runs
applied = host_memory.keep_freed_memory()
import jax, jax.numpy as jnp
cumulative = jax.jit(lambda x: jnp.cumsum(x * 2.0)[::7].sum())  # the cumsum is not fused: a temporary
x = jnp.ones(24 << 20, jnp.float32)
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cumulative(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, *faults[1:])
"""


def probe(**env) -> tuple[bool, list[int]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env,
                         cwd=pathlib.Path(__file__).resolve().parent.parent).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_xla_reuses_its_temporaries_without_page_faults_unless_told_not_to():
    applied, faults = probe()  # the default
    # A call that finds the freed block whole maps nothing afresh. Under load, now and then a warm call
    # maps it again (other threads' allocations can split the freed block: 1 call in 3-9 in the
    # suite), so the best of five is judged; with glibc's defaults every call maps all of it.
    assert applied and min(faults) < 100
    applied, faults = probe(JDEBLUR_HOST_MEMORY="system")
    assert not applied and min(faults) > 40_000  # 192 MB is 49,152 pages of 4 KB, mapped afresh each call


def test_it_stays_off_with_an_accelerator_plugin_or_a_bad_setting(monkeypatch):
    monkeypatch.setattr(host_memory, "accelerator_plugins", lambda: ["cuda"])
    monkeypatch.setenv(host_memory.ENV, "keep")
    assert host_memory.keep_freed_memory() is False
    monkeypatch.setenv(host_memory.ENV, "never")
    with pytest.raises(UserError, match="JDEBLUR_HOST_MEMORY: expected one of keep, system, got 'never'"):
        host_memory.keep_freed_memory()


def test_the_command_refuses_a_bad_setting_before_it_starts(tmp_path):
    done = subprocess.run([sys.executable, "launch.py", "report", "--root", str(tmp_path)], capture_output=True,
                          text=True, env={"JDEBLUR_HOST_MEMORY": "never"},
                          cwd=pathlib.Path(__file__).resolve().parent.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: environment variable JDEBLUR_HOST_MEMORY: expected one of keep, system, "
                                   "got 'never'")
