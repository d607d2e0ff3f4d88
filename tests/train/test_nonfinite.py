"""NaN in a batch: the step flags it; training stops naming the step (keeping the last good checkpoint), or
skips the update and counts it.

The NaN enters as real data would: a pixel of one input batch, which the degradation and the
network spread to the loss and every gradient.
"""
import json

import jax
import numpy as np
import pytest

from jdeblur.train import loop
from tests.train.tiny_training import params_of, run, tiny_config


@pytest.fixture
def poisoned_batches(rng):
    """Three float batches of 8 images; the second holds one NaN pixel."""
    batches = rng.integers(0, 256, (3, 8, 8, 8, 3)).astype(np.float32)
    batches[1, 5, 3, 2, 1] = np.nan
    return batches


def test_skip_leaves_the_state_as_it_was_and_flags_the_step(poisoned_batches):
    states = []
    _, history = run(poisoned_batches, devices=2, skip_nonfinite=True, on_step=states.append)
    assert [bool(h["finite"]) for h in history] == [True, False, True]
    assert not np.isfinite(history[1]["loss"])
    for part in ("params", "opt_state", "ema_params"):  # the bad update left no trace
        jax.tree.map(np.testing.assert_array_equal, states[0][part], states[1][part])
    assert [int(s["step"]) for s in states] == [1, 2, 3]  # the counter moves on: new degradations next
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(states[2]))
    kernels = [s["params"]["Conv_0"]["kernel"] for s in states]
    assert np.max(np.abs(kernels[2] - kernels[1])) > 0  # and the next good step trains again


def test_without_skip_the_nan_spreads_and_is_flagged_from_then_on(poisoned_batches):
    state, history = run(poisoned_batches, devices=2, steps=3)
    assert [bool(h["finite"]) for h in history] == [True, False, False]
    assert not np.all(np.isfinite(state["params"]["Conv_0"]["kernel"]))


class Poisoned:
    """The train loader's batches as float32, one pixel NaN in the batches numbered ``bad`` (from 0)."""

    def __init__(self, loader, bad):
        self.loader, self.bad, self.count = loader, bad, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = {k: v.astype(np.float32) for k, v in next(self.loader).items()}
        if self.count in self.bad:
            batch["sharp"][0, 0, 0, 0] = np.nan
        self.count += 1
        return batch

    def get_state(self):
        return self.loader.get_state()

    def set_state(self, state):
        self.loader.set_state(state)

    def close(self):
        self.loader.close()


@pytest.fixture
def third_batch_poisoned(monkeypatch):
    make_loader = loop.make_batches
    monkeypatch.setattr(loop, "make_batches", lambda *a, **k: Poisoned(make_loader(*a, **k), bad={2}))


def one_device_config(data_dir, **train):
    """``tiny_config`` on one device with one patch size: compiles in a fraction of the time."""
    config = tiny_config(str(data_dir), num_devices=1, global_batch=2, **train)
    config.data.patch_schedule = ()
    return config


def checkpoint_steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_stop_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, third_batch_poisoned):
    # Checkpoints every 2 steps, logs every 4: step 3 is bad, found at step 4 (before its save).
    config = one_device_config(data_dir, steps=4, log_every=4, checkpoint_every=2, eval_every=4)
    with pytest.raises(FloatingPointError, match=r"at step 3; .* the last good checkpoint, step 2, is kept"):
        loop.train_and_evaluate(config, tmp_path)
    assert checkpoint_steps(tmp_path) == [2]
    assert all(np.all(np.isfinite(p)) for p in params_of(tmp_path))
    assert not (tmp_path / "eval.jsonl").exists()  # the bad state was not evaluated either


@pytest.mark.slow
def test_skip_counts_and_logs_the_skipped_step(tmp_path, data_dir, third_batch_poisoned, capsys):
    config = one_device_config(data_dir, steps=8, log_every=4, checkpoint_every=4, eval_every=8)
    config.train.nonfinite = "skip"
    assert loop.train_and_evaluate(config, tmp_path, stop_after=4) is None
    assert "step 4: skipped the updates of steps 3 (non-finite loss or gradients)" in capsys.readouterr().out
    [record] = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["step"] == 4 and record["skipped_steps"] == 1
    assert np.isfinite(record["loss"]) and np.isfinite(record["grad_norm"])  # means of the good steps
    assert checkpoint_steps(tmp_path) == [4]
    assert all(np.all(np.isfinite(p)) for p in params_of(tmp_path))
