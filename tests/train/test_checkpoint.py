"""Checkpoints: what is kept (latest K and the best by eval PSNR), what is restored, and which is best."""
import json

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.train.checkpoint import Checkpointer, best_step
from jdeblur.train.parallel import make_mesh


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
    state, data_state = manager.restore(4, abstract, make_mesh(1))
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
