"""The unfolded non-blind model: shapes, the unrolling against hand-run HQS, gradients, any kernel."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.models.registry import apply_model, example_inputs, get_model, model_inputs
from jdeblur.physics.operators import blur
from jdeblur.physics.proximal import data_proximal
from tests.models.model_fixtures import quick_jit

SMALL = dict(stages=3, cg_iterations=2, prior_width=4, prior_depth=1)


def _init(model, y, k, sigma):
    return quick_jit(model.init)(jax.random.key(0), y, k, sigma)["params"]


def test_untrained_model_is_hqs_with_an_identity_prior(rng):
    """At initialisation the prior is the identity (zero-initialised residual), so the model is
    plain HQS with the documented schedule: run it by hand with the physics' data step."""
    model = get_model("unfolded", **SMALL)
    k = jnp.asarray(rng.random((2, 5, 4)), jnp.float32)
    k = k / k.sum(axis=(1, 2), keepdims=True)
    sigma = jnp.array([0.01, 0.03])
    sharp = jnp.asarray(rng.random((2, 17, 14, 3)), jnp.float32)
    y = blur(sharp, k, boundary="valid") + sigma[:, None, None, None] * jnp.asarray(
        rng.standard_normal((2, 13, 11, 3)), jnp.float32)
    params = _init(model, y, k, sigma)
    got = quick_jit(model.apply)({"params": params}, y, k, sigma)

    floor, weight, start = (float(np.exp(params[name])) for name in ("log_sigma_floor", "log_weight", "log_sigma_start"))
    sigma_data = np.sqrt(np.asarray(sigma) ** 2 + floor**2)
    top, left = 5 - 1 - 5 // 2, 4 - 1 - 4 // 2  # where 'valid' outputs are centred
    grid = (13 + 4 + 1, 11 + 3)  # y + kernel - 1, rounded up to the prior's multiple (2)
    z = jnp.pad(y, ((0, 0), (top, grid[0] - 13 - top), (left, grid[1] - 11 - left), (0, 0)), mode="edge")
    for t in np.linspace(0, 1, 3):
        sigma_stage = start ** (1 - t) * sigma_data**t
        z = data_proximal(y, k, z, weight * sigma_data**2 / sigma_stage**2, iterations=2)
    np.testing.assert_allclose(got, z[:, top:top + 13, left:left + 11], atol=2e-4)  # float32 CG
    assert got.shape == y.shape and got.dtype == jnp.float32


def test_delta_kernel_without_noise_returns_the_input(rng):
    model = get_model("unfolded", **SMALL)
    y = jnp.asarray(rng.random((1, 8, 8, 3)), jnp.float32)
    delta = jnp.zeros((3, 3)).at[1, 1].set(1.0)
    params = _init(model, y, delta, 0.0)
    np.testing.assert_allclose(quick_jit(model.apply)({"params": params}, y, delta, 0.0), y, atol=1e-5)


def test_gradients_reach_the_prior_and_the_schedule_and_any_kernel_size_runs(rng):
    model = get_model("unfolded", **{**SMALL, "stages": 2, "cg_iterations": 1})
    inputs = example_inputs(model, size=12, kernel_size=5, batch=2)
    assert model_inputs(model) == ("blurred", "kernel", "noise_sigma") == tuple(inputs)
    assert model_inputs(model, training=True) == model_inputs(model)  # no training_inputs: the same
    params = _init(model, *inputs.values())
    # A prior that is not the identity, so that every path carries gradient.
    params = jax.tree.map(lambda p: p + 0.05 * jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
    y = jnp.asarray(rng.random((2, 12, 12, 3)), jnp.float32)
    target = jnp.asarray(rng.random((2, 12, 12, 3)), jnp.float32)
    batch = {"blurred": y, "kernel": jnp.full((2, 5, 5), 1 / 25), "noise_sigma": jnp.array([0.01, 0.02])}

    def loss(p):
        return jnp.mean((apply_model(model, p, batch)["image"] - target) ** 2)

    grads = quick_jit(jax.grad(loss))(params)
    loss = quick_jit(loss)
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))
    step = 1e-2
    shifted = lambda d: {**params, "log_weight": params["log_weight"] + d}  # noqa: E731
    numeric = (loss(shifted(step)) - loss(shifted(-step))) / (2 * step)
    np.testing.assert_allclose(grads["log_weight"], numeric, rtol=0.05, atol=1e-7)
    # The same parameters with a 9x9 kernel (training saw 5x5) and one shared kernel: no retraining.
    out = quick_jit(model.apply)({"params": params}, y, jnp.full((9, 9), 1 / 81), 0.01)
    assert out.shape == y.shape and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("field, value", [("stages", 0), ("cg_iterations", 1.5), ("boundary", "reflect"),
                                          ("weight", 0.0)])
def test_bad_fields_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        get_model("unfolded", **{field: value})


def test_prior_margin_covering_the_grid_is_the_whole_grid(rng):
    y = jnp.asarray(rng.random((1, 10, 12, 3)), jnp.float32)
    k = jnp.full((5, 5), 1 / 25)
    one_stage = {**SMALL, "stages": 1, "cg_iterations": 1}
    whole = get_model("unfolded", **one_stage)
    params = jax.tree.map(lambda p: p + 0.05 * jnp.asarray(rng.standard_normal(p.shape), p.dtype),
                          _init(whole, y, k, 0.02))
    apply = lambda model: quick_jit(model.apply)({"params": params}, y, k, 0.02)  # noqa: E731
    np.testing.assert_allclose(apply(get_model("unfolded", **one_stage, prior_margin=100)), apply(whole), atol=1e-6)
    framed = get_model("unfolded", **one_stage, prior_margin=0)
    assert framed._prior_window(2, 10, 14) == slice(2, 12)  # the frame's 10 rows (a multiple of 2)
    assert float(jnp.max(jnp.abs(apply(framed) - apply(whole)))) > 1e-4
