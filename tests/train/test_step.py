"""The per-device train step under shard_map and pmap, over 1-8 devices and microbatches."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.tiny_training import MODEL, run


@pytest.fixture
def batches(rng):
    return rng.integers(0, 256, (3, 8, 8, 8, 3), dtype=np.uint8)


def assert_params_close(a, b, rtol):
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)))


def test_devices_and_modes_and_microbatches_agree(batches):
    reference, ref_hist = run(batches, devices=1)
    assert int(reference["step"]) == 3
    for devices, mode, micro in [(2, "shard_map", 1), (4, "shard_map", 1), (8, "shard_map", 1),
                                 (8, "pmap", 1), (2, "pmap", 2), (1, "shard_map", 4)]:
        state, hist = run(batches, devices=devices, mode=mode, microbatches=micro)
        assert_params_close(state, reference, 1e-5)
        np.testing.assert_allclose(hist[-1]["loss"], ref_hist[-1]["loss"], rtol=1e-5)


def test_training_moves_params_and_ema_averages(batches):
    init = MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    state, hist = run(batches, devices=2, steps=1)
    for p, i in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(init)):
        assert np.max(np.abs(p - i)) > 0
    # One step with decay 0.5: the average is halfway between the initial and the new parameters.
    for e, p, i in zip(*(jax.tree.leaves(t) for t in (state["ema_params"], state["params"], init))):
        np.testing.assert_allclose(e, 0.5 * p + 0.5 * i, rtol=1e-6, atol=1e-7)
    assert set(hist[0]) >= {"loss", "psnr", "grad_norm", "lr", "loss_l1"}
    assert np.isfinite(hist[0]["grad_norm"]) and hist[0]["grad_norm"] > 0
    np.testing.assert_allclose(hist[0]["lr"], 1e-2)


def test_seed_changes_degradations_same_seed_repeats(batches):
    a, ha = run(batches, devices=2, seed=3)
    b, hb = run(batches, devices=2, seed=3)
    c, hc = run(batches, devices=2, seed=4)
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert ha[0]["loss"] != hc[0]["loss"]


def test_microbatches_must_divide_share(batches):
    with pytest.raises(ValueError, match="microbatches"):
        run(batches, devices=2, microbatches=3, steps=1)
