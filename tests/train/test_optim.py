"""Optimizers and schedules from configs."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdeblur.train import optim


def config(**kw):
    c = optim.default_optim_config()
    c.update(kw)
    return c


def test_warmup_cosine_shape():
    schedule = optim.make_schedule(config(lr=1e-3, warmup_steps=10, final_lr=1e-6), 100)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(100)), 1e-6, rtol=1e-4)
    values = np.array([float(schedule(s)) for s in range(10, 101)])
    assert np.all(np.diff(values) <= 1e-12)


def test_cosine_reaches_final_lr_and_piecewise_scales():
    cos = optim.make_schedule(config(schedule="cosine", lr=1e-3, final_lr=1e-7), 50)
    np.testing.assert_allclose(float(cos(50)), 1e-7, rtol=1e-3)
    pw = optim.make_schedule(config(schedule="piecewise", lr=1.0, boundaries=(5, 8), scales=(0.5, 0.1)), 10)
    np.testing.assert_allclose([float(pw(s)) for s in (0, 5, 8)], [1.0, 0.5, 0.05], rtol=1e-6)


def test_adamw_decays_weights_and_clipping_bounds_update():
    tx, _ = optim.make_optimizer(config(schedule="constant", lr=0.1, weight_decay=0.5, clip_norm=1.0), 10)
    params = {"w": jnp.full((4,), 2.0)}
    grads = {"w": jnp.zeros((4,))}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 2.0, rtol=1e-6)
    clip = optax.clip_by_global_norm(1.0)
    big = {"w": jnp.full((4,), 100.0)}
    clipped, _ = clip.update(big, clip.init(big))
    np.testing.assert_allclose(optax.tree.norm(clipped), 1.0, rtol=1e-6)
    tx_adam, _ = optim.make_optimizer(config(name="adam", schedule="constant"), 10)
    assert jax.tree.leaves(tx_adam.init(params))


@pytest.mark.parametrize("field, value, message", [
    ("schedule", "linear", "optim.schedule"),
    ("name", "sgd", "optim.name"),
    ("lr", -1.0, "optim.lr"),
])
def test_bad_config_names_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        optim.make_optimizer(config(**{field: value}), 10)


def test_piecewise_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        optim.make_schedule(config(schedule="piecewise", boundaries=(1,), scales=()), 10)
