"""The blind unfolded model: a valid kernel estimate from the whole image, sown beside the image."""
import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.models.registry import apply_model, get_model, model_estimates, model_inputs
from jdeblur.physics.kernels import kernel_centroid
from tests.models.model_fixtures import quick_jit


def test_outputs_a_valid_kernel_and_gradients_reach_the_estimator(rng):
    model = get_model("blind_unfolded", variant="tiny")
    assert model_inputs(model) == ("blurred",) and model_estimates(model) == ("kernel", "sharp_estimate")
    y = jnp.asarray(rng.random((2, 16, 24, 3)), jnp.float32)
    params = quick_jit(model.init)(jax.random.key(0), y)["params"]
    # An estimator that is not the identity (which would fit the identity blur exactly).
    params = jax.tree.map(lambda p: p + 0.3 * jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
    outputs = quick_jit(lambda p: apply_model(model, p, {"blurred": y}))(params)
    assert outputs["image"].shape == y.shape and outputs["image"].dtype == jnp.float32
    kernel = outputs["kernel"]
    assert kernel.shape == (2, 9, 9) and float(jnp.min(kernel)) >= 0
    np.testing.assert_allclose(jnp.sum(kernel, axis=(1, 2)), 1.0, rtol=1e-5)
    # Random weights make kernels that fill their window, whose mass a sub-pixel shift pushes out
    # of it: centred to a fraction of a pixel (a realistic kernel exactly: test_kernel_estimation).
    np.testing.assert_allclose(kernel_centroid(kernel), 0.0, atol=0.25)

    def loss(p):
        out = apply_model(model, p, {"blurred": y})
        return jnp.mean((out["image"] - y) ** 2) + jnp.sum(out["kernel"][:, 4, 4])

    grads = quick_jit(jax.grad(loss))(params)
    for part in ("estimator", "deconvolve"):
        leaves = jax.tree.leaves(grads[part])
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
        assert max(float(jnp.max(jnp.abs(g))) for g in leaves) > 0, part
