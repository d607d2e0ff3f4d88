"""Checkpoints: what is kept (latest K and the best by eval PSNR), what is restored, which is best, and
that a damaged checkpoint is detected and skipped, from its data: a read that fails is not damage."""
import errno
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.train.checkpoint import (
    Checkpointer,
    CheckpointReadError,
    CorruptCheckpointError,
    best_step,
    state_checksums,
)
from jdeblur.train.logger import read_jsonl
from jdeblur.train.parallel import make_mesh
from tests.train.checkpoint_damage import flip_middle_byte, largest_array_file


def state_at(step, rng):
    return {"params": {"w": jnp.asarray(rng.standard_normal(5), jnp.float32)}, "step": jnp.asarray(step, jnp.int32)}


def test_keeps_latest_and_best_and_restores_both_parts(tmp_path, rng):
    psnr = {2: 25.0, 4: 27.0, 6: 26.0, 8: None, 10: 24.0}
    saved = {}
    manager = Checkpointer(tmp_path, keep=2, async_save=True)
    with (tmp_path / "eval.jsonl").open("w") as history:
        for step, value in psnr.items():
            saved[step] = state_at(step, rng)
            metrics = None if value is None else {"psnr": value}
            manager.save(step, saved[step], {"next_index": step * 16}, metrics=metrics)
            if value is not None:
                history.write(json.dumps({"step": step, "model": {"psnr": value}}) + "\n")
    manager.wait()
    # The latest two (8, 10) and the best (4) survive; 2 and 6 are pruned.
    assert manager.steps() == [4, 8, 10]
    assert best_step(tmp_path) == 4
    abstract = jax.eval_shape(lambda: saved[4])
    state, data_state, _ = manager.restore(4, abstract, make_mesh(1))
    np.testing.assert_array_equal(state["params"]["w"], saved[4]["params"]["w"])
    assert int(state["step"]) == 4 and data_state == {"next_index": 64}
    manager.close()


def test_best_step_falls_back_to_latest_without_evaluations(tmp_path, rng):
    manager = Checkpointer(tmp_path, keep=3, async_save=False)
    for step in (1, 2):
        manager.save(step, state_at(step, rng), {})
    manager.close()
    assert best_step(tmp_path) == 2
    assert best_step(tmp_path / "missing") is None


# --- integrity: every fault a disk or a kill can leave is detected, and the previous checkpoint used ---

def numpy_checksum(leaf: np.ndarray) -> int:
    """The checksum of ``state_checksums``, computed independently in numpy with Python integers."""
    words = np.ascontiguousarray(leaf).reshape(-1).view(np.uint32).astype(object)
    return int(sum(w * (2 * i + 1) for i, w in enumerate(words)) % 2**32)


def test_state_checksums_equal_numpy_and_see_any_one_changed_word(rng):
    state = {"params": {"w": rng.standard_normal((6, 7)).astype(np.float32)},
             "step": np.int32(rng.integers(99))}
    checksums = state_checksums(state)
    assert checksums == {"['params']['w']": numpy_checksum(state["params"]["w"]),
                         "['step']": numpy_checksum(state["step"])}
    for _ in range(5):  # one random bit of one random word
        changed = state["params"]["w"].copy()
        bit = np.uint32(1 << int(rng.integers(32)))
        changed.reshape(-1).view(np.uint32)[rng.integers(changed.size)] ^= bit
        key = "['params']['w']"
        assert state_checksums({**state, "params": {"w": changed}})[key] != checksums[key]


CORRUPTIONS = {
    # Orbax reads this one back without complaint, as different numbers: only the checksums see it.
    "flipped byte": (flip_middle_byte, "differ from the checksums"),
    "truncated array file": (lambda p: p.write_bytes(p.read_bytes()[:p.stat().st_size // 3]), "unreadable"),
    "deleted array file": (lambda p: p.unlink(), "unreadable"),
}


def save_three(tmp_path, rng, keep=3):
    manager = Checkpointer(tmp_path, keep=keep, async_save=False)
    saved = {}
    for step in (1, 2, 3):
        # Random floats do not compress: the array files hold the raw words, as real weights do.
        saved[step] = {"params": {"w": jnp.asarray(rng.standard_normal(4096), jnp.float32)},
                       "step": jnp.asarray(step, jnp.int32)}
        manager.save(step, saved[step], {"next_index": step})
    return manager, saved


@pytest.mark.parametrize("corruption", CORRUPTIONS)
# A failed read leaves orbax's reading coroutines to be closed by the garbage collector, noisily.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, rng, corruption):
    corrupt, problem = CORRUPTIONS[corruption]
    manager, saved = save_three(tmp_path, rng)
    corrupt(largest_array_file(manager.directory / "3"))
    warnings = []
    step, state, data_state, _ = manager.restore_latest(jax.eval_shape(lambda: saved[3]), make_mesh(1),
                                                     warn=warnings.append)
    assert step == 2 and data_state == {"next_index": 2}
    np.testing.assert_array_equal(state["params"]["w"], saved[2]["params"]["w"])
    assert problem in warnings[0] and str(manager.directory / "3") in warnings[0]
    assert "resuming from step 2" in warnings[-1]
    # The bad one is kept aside for inspection, out of the way of the resumed run's save of step 3.
    assert manager.steps() == [1, 2] and (manager.directory / "3.corrupt").is_dir()
    manager.save(3, saved[3], {"next_index": 3})
    assert manager.restore(3, jax.eval_shape(lambda: saved[3]), make_mesh(1))[1] == {"next_index": 3}
    manager.close()


def test_no_intact_checkpoint_is_an_error_that_renames_nothing(tmp_path, rng):
    manager, saved = save_three(tmp_path, rng)
    for step in (1, 2, 3):
        flip_middle_byte(largest_array_file(manager.directory / str(step)))
    with pytest.raises(CorruptCheckpointError, match="no checkpoint .* reads back intact"):
        manager.restore_latest(jax.eval_shape(lambda: saved[3]), make_mesh(1), warn=lambda m: None)
    assert manager.steps() == [1, 2, 3]
    manager.close()
    assert Checkpointer(tmp_path / "empty").restore_latest({}, make_mesh(1), warn=print) is None


def failing_reads(manager, monkeypatch, times, error):
    """Makes orbax's restore raise ``error`` the first ``times`` calls (all calls for ``times=None``)."""
    restore, calls = manager.manager.restore, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if times is None or len(calls) <= times:
            raise error
        return restore(*args, **kwargs)

    monkeypatch.setattr(manager.manager, "restore", flaky)
    return calls


def test_a_transient_read_error_renames_nothing(tmp_path, rng, monkeypatch):
    """Defect: any exception from orbax condemned the newest checkpoint (renamed STEP.corrupt)."""
    manager, saved = save_three(tmp_path, rng)
    abstract = jax.eval_shape(lambda: saved[3])
    calls = failing_reads(manager, monkeypatch, 1, OSError(errno.EIO, "Input/output error"))
    step, state, _, _ = manager.restore_latest(abstract, make_mesh(1), warn=pytest.fail)  # retried, no warning
    assert step == 3 and len(calls) == 2
    np.testing.assert_array_equal(state["params"]["w"], saved[3]["params"]["w"])
    failing_reads(manager, monkeypatch, None, OSError(errno.EIO, "Input/output error"))  # the storage stays away
    with pytest.raises(CheckpointReadError, match=r"checkpoint .*/3: reading it failed twice .*nothing was changed"):
        manager.restore_latest(abstract, make_mesh(1), warn=pytest.fail)
    assert manager.steps() == [1, 2, 3] and not list(manager.directory.glob("*.corrupt*"))
    manager.close()


def test_a_file_that_cannot_be_read_is_an_io_error_not_corruption(tmp_path, rng, monkeypatch):
    from jdeblur.train import checkpoint

    manager, saved = save_three(tmp_path, rng)
    failing_reads(manager, monkeypatch, None, ValueError("tensorstore: error reading chunk"))
    unreadable = largest_array_file(manager.directory / "3")

    def open_failing(path, *args, **kwargs):
        if pathlib.Path(path) == unreadable:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", open_failing, raising=False)
    with pytest.raises(CheckpointReadError, match=f"reading {unreadable} failed"):
        manager.restore_latest(jax.eval_shape(lambda: saved[3]), make_mesh(1), warn=pytest.fail)
    assert manager.steps() == [1, 2, 3] and not list(manager.directory.glob("*.corrupt*"))
    manager.close()


def test_a_checkpoint_without_its_integrity_record_restores_with_a_warning(tmp_path, rng):
    manager, saved = save_three(tmp_path, rng)
    shutil.rmtree(manager.directory / "3" / "integrity")
    warnings = []
    step, state, _, _ = manager.restore_latest(jax.eval_shape(lambda: saved[3]), make_mesh(1),
                                               warn=warnings.append)
    assert step == 3 and warnings == [f"warning: checkpoint {manager.directory / '3'} has no integrity record "
                                      f"(integrity/): restored unverified, a damaged array would go unnoticed"]
    np.testing.assert_array_equal(state["params"]["w"], saved[3]["params"]["w"])
    with pytest.warns(UserWarning, match="no integrity record"):
        manager.restore(3, jax.eval_shape(lambda: saved[3]), make_mesh(1))
    manager.close()


def test_the_log_record_is_saved_checked_and_restored(tmp_path, rng):
    manager, saved = save_three(tmp_path, rng)
    record = {"steps": [{"loss": 0.1, "finite": True}], "dtypes": {"loss": "float32", "finite": "bool"}}
    manager.save(4, saved[3], {"next_index": 4}, log_state=record)
    abstract = jax.eval_shape(lambda: saved[3])
    assert manager.restore(4, abstract, make_mesh(1))[2] == record
    assert manager.restore(3, abstract, make_mesh(1))[2] == {}  # saved without one
    log_file = next(p for p in (manager.directory / "4" / "log").rglob("*") if p.is_file())
    log_file.write_text(log_file.read_text().replace("0.1", "0.2"))
    with pytest.raises(CorruptCheckpointError, match="log record differ"):
        manager.restore(4, abstract, make_mesh(1))
    manager.close()


def test_a_checkpoint_is_removed_only_after_the_next_one_is_committed(tmp_path, rng, monkeypatch):
    """keep=1: saving step 2 removes step 1, but orbax's deleter runs only once step 2 is complete."""
    manager = Checkpointer(tmp_path, keep=1, async_save=True)
    manager.save(1, state_at(1, rng), {})
    manager.wait()
    seen = []
    deleter = manager.manager._checkpoint_deleter  # orbax's: the one place old steps are deleted
    delete_steps = deleter.delete_steps

    def spy(steps):
        seen.append((list(steps), sorted(p.name for p in manager.directory.iterdir())))
        return delete_steps(steps)

    monkeypatch.setattr(deleter, "delete_steps", spy)
    manager.save(2, state_at(2, rng), {})
    manager.wait()
    assert seen == [([1], ["1", "2"])]  # when 1 is deleted, 2 is there and no temporary folder is
    assert manager.steps() == [2]
    manager.close()


def test_read_jsonl_skips_only_a_torn_last_line(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"st\n{"step": 2}\n')
    with pytest.raises(ValueError, match="eval.jsonl, line 2"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []
