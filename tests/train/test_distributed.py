"""Two processes of two CPU devices each train as one process of four; checkpoints restore in either layout.

The processes join through ``jax.distributed.initialize`` on localhost (launch.py --coordinator,
--num-processes, --process-id); their collectives are JAX's CPU default, gloo. Parameters agree
up to the order of float reductions (measured: 1.4e-6 relative, 3e-8 absolute, after 12 steps).
The 2-process run starts from the 1-process run's checkpoint (its data iterator state included),
so each layout restores the other's checkpoints, and the test needs two runs, not four.
"""
import json
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jdeblur.config import REPO
from jdeblur.models.registry import build_model
from jdeblur.train import optim
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.parallel import make_mesh
from jdeblur.train.state import abstract_state
from jdeblur.workdir import load_config
from tests.launching import UNET_LOCAL

pytestmark = pytest.mark.slow

DEVICES = 4
# Checkpoints at steps 2 and 4, where the runs stop (--stop-after): no evaluation, which would
# take longer to compile than the train step.
OVERRIDES = ["--config.train.steps=6", "--config.train.log_every=2", "--config.train.checkpoint_every=2",
             "--config.train.eval_every=6", "--config.train.progress=false", "--stop-after", "4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def train(env, workdir, data_dir, *, processes: int) -> list[str]:
    """``launch.py train`` as ``processes`` processes of ``DEVICES / processes`` CPU devices each."""
    command = [sys.executable, "launch.py", "train", "--config", UNET_LOCAL, "--workdir", str(workdir),
               f"--config.data.data_dir={data_dir}", *OVERRIDES]
    env = {**env, "JAX_NUM_CPU_DEVICES": str(DEVICES // processes)}
    if processes > 1:
        port = free_port()
        commands = [command + ["--coordinator", f"localhost:{port}", "--num-processes", str(processes),
                               "--process-id", str(i)] for i in range(processes)]
    else:
        commands = [command]
    logs = [workdir.parent / f"{workdir.name}.{processes}x{i}.log" for i in range(processes)]
    running = [subprocess.Popen(c, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
               for c, log in zip(commands, logs)]
    try:
        codes = [p.wait(timeout=300) for p in running]
    finally:
        for p in running:
            if p.poll() is None:
                p.kill()
    outputs = [log.read_text() for log in logs]
    assert codes == [0] * processes, "\n".join(o[-3000:] for o in outputs)
    return outputs


def state_at(workdir, step, devices):
    """The train state of the checkpoint of ``step``, restored replicated over ``devices`` devices."""
    config = load_config(workdir)
    abstract = abstract_state(config, build_model(config.model),
                                   optim.make_optimizer(config.optim, config.train.steps)[0])
    manager = Checkpointer(workdir, read_only=True)
    try:
        state = manager.restore(step, abstract, make_mesh(devices))[0]
    finally:
        manager.close()
    assert all(len(leaf.sharding.device_set) == devices for leaf in jax.tree.leaves(state))
    return jax.device_get(state)


def assert_states_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * float(np.max(np.abs(y))))


def logged(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_as_one_and_checkpoints_restore_in_both_layouts(env, data_dir, tmp_path):
    one = tmp_path / "one_process"
    train(env, one, data_dir, processes=1)  # first, alone: it builds the dataset
    # Two processes resume the one-process run's step-2 checkpoint and train steps 3 and 4.
    two = tmp_path / "two_processes"
    shutil.copytree(one, two)
    shutil.rmtree(two / "checkpoints" / "4")
    outputs = train(env, two, data_dir, processes=2)
    assert all("resuming from step 2" not in o for o in outputs[1:]) and "resuming from step 2" in outputs[0]
    assert json.loads((two / "run.json").read_text())["process_count"] == 2
    # Written once, by process 0: one step-4 checkpoint folder, one record per step in each log.
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["2", "4"]
    assert [r["step"] for r in logged(two)] == [2, 4]
    # The two processes' step-4 checkpoint, restored on one process's 4 devices and on 1, equals the
    # one process's own step 4.
    expected = state_at(one, 4, devices=1)
    assert_states_close(state_at(two, 4, devices=DEVICES), expected)
    assert_states_close(state_at(two, 4, devices=1), expected)
    for a, b in zip(logged(two), logged(one)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
