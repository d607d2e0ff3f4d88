"""The per-device train step under shard_map and pmap, over 1-8 devices and microbatches."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdeblur.train import parallel, step as steplib
from jdeblur.train.state import create_state


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x + nn.Conv(3, (3, 3))(nn.relu(nn.Conv(4, (3, 3))(x)))


MODEL = TinyNet()


def apply_fn(params, x):
    return MODEL.apply({"params": params}, x)


def loss_fn(pred, target):
    l1 = jnp.mean(jnp.abs(pred - target))
    return l1, {"l1": l1}


def prepare(keys, batch):
    """Per-image noise from the image's key: the degradation must follow the image, not the device."""
    sharp = batch["sharp"].astype(jnp.float32) / 255.0
    noise = jax.vmap(lambda k: 0.1 * jax.random.normal(k, sharp.shape[1:]))(keys)
    return sharp + noise, sharp


def run(batches, *, devices, mode="shard_map", microbatches=1, seed=1, steps=3, skip_nonfinite=False,
        on_step=lambda state: None):
    """Trains ``steps`` steps on ``batches``; returns the final state and each step's metrics (on the host).

    ``on_step`` sees the state (on the host) after each step."""
    params = MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    tx = optax.adam(1e-2)
    mesh = parallel.make_mesh(devices)
    step_fn = steplib.make_train_step(
        apply_fn=apply_fn, loss_fn=loss_fn, tx=tx, schedule=optax.constant_schedule(1e-2),
        prepare=prepare, microbatches=microbatches, ema_decay=0.5, skip_nonfinite=skip_nonfinite,
    )
    train_step = parallel.parallelize(step_fn, mesh, mode)
    state = parallel.replicate(create_state(params, tx, ema=True), mesh)
    history = []
    for i in range(steps):
        state, stats = train_step(state, parallel.place_batch({"sharp": batches[i]}, mesh, mode), jax.random.key(seed))
        history.append(jax.device_get(stats))
        on_step(jax.device_get(state))
    return jax.device_get(state), history


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
