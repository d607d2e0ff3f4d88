"""The workdir lock: one holder at a time across real processes, gone with its holder however it ends."""
import os
import signal
import subprocess

import pytest

from jdeblur.train import workdir_lock
from tests.processes import hold_in_another_process


def test_a_second_holder_is_refused_naming_the_workdir_and_the_pid(tmp_path):
    holder = hold_in_another_process(tmp_path)
    try:
        with pytest.raises(workdir_lock.WorkdirBusyError, match=f"--workdir {tmp_path}: process {holder.pid} is "
                                                               "training in it"):
            workdir_lock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    # kill -9 took the lock with it: the file left behind is not a stale lock.
    assert (tmp_path / workdir_lock.LOCK_FILE).is_file()
    with workdir_lock.acquire(tmp_path):
        assert workdir_lock.holder(tmp_path) == os.getpid()
        with pytest.raises(workdir_lock.WorkdirBusyError, match=f"process {os.getpid()}"):
            workdir_lock.acquire(tmp_path)  # a second descriptor in the same process is refused too
    with workdir_lock.acquire(tmp_path):  # released at the end of the with
        pass


def test_a_program_the_holder_starts_does_not_keep_the_lock(tmp_path):
    """The lock file is close-on-exec: a child outliving the trainer (here a sleep, started without closing
    inherited descriptors) holds nothing."""
    with workdir_lock.acquire(tmp_path):
        child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        with workdir_lock.acquire(tmp_path):
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
