"""Optimizers and schedules from configs."""
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.errors import UserError
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


def test_adamw_decays_weights():
    tx, _ = optim.make_optimizer(config(schedule="constant", lr=0.1, weight_decay=0.5, clip_norm=1.0), 10)
    params = {"w": jnp.full((4,), 2.0)}
    grads = {"w": jnp.zeros((4,))}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * 2.0, rtol=1e-6)


def numpy_adam(grads: list[np.ndarray], *, lr, b1, b2, eps, clip_norm) -> list[np.ndarray]:
    """Adam's updates for a sequence of gradients, each first clipped to global norm ``clip_norm``
    (0: not clipped), in float64: the reference for ``make_optimizer``'s chain."""
    m = v = np.zeros_like(grads[0])
    updates = []
    for t, g in enumerate(grads, start=1):
        norm = np.linalg.norm(g)
        if clip_norm and norm > clip_norm:
            g = g * clip_norm / norm
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        updates.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return updates


@pytest.mark.parametrize("clip_norm", [1.0, 0.0])
def test_make_optimizer_clips_the_global_norm_before_adam(rng, clip_norm):
    # A large gradient, then small ones: clipping the first changes Adam's later steps, which
    # divide by the running second moment (a first step alone is the same with or without it).
    grads = [rng.normal(size=(4,)) * scale for scale in (100.0, 0.1, 0.1)]
    cfg = config(name="adam", schedule="constant", lr=0.1, clip_norm=clip_norm)
    tx, _ = optim.make_optimizer(cfg, 10)
    state = tx.init({"w": jnp.zeros((4,))})
    got = []
    for g in grads:
        update, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state)
        got.append(np.asarray(update["w"]))
    expected = numpy_adam(grads, lr=0.1, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, clip_norm=clip_norm)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    other = numpy_adam(grads, lr=0.1, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, clip_norm=1.0 - clip_norm)
    assert np.abs(np.asarray(got[-1]) - other[-1]).max() > 1e-3  # the comparison tells the two apart


@pytest.mark.parametrize("field, value, message", [
    ("schedule", "linear", "config.optim.schedule"),
    ("name", "sgd", "config.optim.name"),
    ("lr", -1.0, "config.optim.lr"),
    ("clip_norm", -1.0, "config.optim.clip_norm"),
])
def test_bad_config_names_field(field, value, message):
    with pytest.raises(UserError, match=message):
        optim.make_optimizer(config(**{field: value}), 10)


def test_piecewise_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        optim.make_schedule(config(schedule="piecewise", boundaries=(1,), scales=()), 10)
