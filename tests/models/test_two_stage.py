"""The two-stage blind model: the non-blind model given the true kernel in training (its gradients:
tests/models/test_unfolded.py), the searched kernel and the estimated noise level otherwise."""
import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.models.registry import apply_model, get_model, model_estimates, model_inputs
from jdeblur.physics.kernels import gaussian_kernel
from jdeblur.physics.noise import estimate_noise_sigma
from jdeblur.physics.operators import blur
from tests.models.model_fixtures import quick_jit

# The model against its parts, two compilations of the same function: their fusions round apart by
# up to 6e-5 over the unfolded iterations (XLA:CPU's older fusion emitters, tests/conftest.py);
# a kernel 10% wider moves them by up to 9e-2, a noise level 10% higher by 2e-2.
ROUNDING = 1e-4


def test_training_takes_the_true_kernel_and_evaluation_searches_for_it(rng):
    model = get_model("two_stage", variant="tiny")
    assert model_inputs(model) == ("blurred",) and model_estimates(model) == ("kernel",)
    assert model_inputs(model, training=True) == ("blurred", "kernel", "noise_sigma")
    deconvolve = get_model("unfolded", variant="tiny")
    sharp = jnp.asarray(rng.random((2, 24, 32, 3)), jnp.float32)
    kernel = jnp.stack([gaussian_kernel(9, sigma=s) for s in (1.0, 2.0)])
    y = jnp.stack([blur(sharp[i:i + 1], kernel[i])[0] for i in range(2)])
    sigma = jnp.asarray([0.01, 0.03], jnp.float32)
    params = {"deconvolve": _perturbed_params(deconvolve, rng, y, kernel, sigma)}

    def run(p):
        trained = apply_model(model, p, {"blurred": y, "kernel": kernel, "noise_sigma": sigma}, training=True)
        return trained, apply_model(model, p, {"blurred": y, "kernel": kernel, "noise_sigma": sigma})

    trained, blind = quick_jit(run)(params)
    expected = quick_jit(lambda p: deconvolve.apply({"params": p}, y, kernel, sigma))(params["deconvolve"])
    np.testing.assert_allclose(trained["image"], expected, atol=ROUNDING)
    assert "kernel" not in trained  # nothing searched in training
    # The search is tested in tests/physics/test_blind_kernel.py (its thresholds make it sensitive
    # to rounding, so another compilation may find a slightly different kernel): here, that the
    # model deconvolves with the kernel it sowed and the noise level estimated from the image.
    found = blind["kernel"]
    assert found.shape == (2, 9, 9) and float(jnp.min(found)) >= 0
    np.testing.assert_allclose(jnp.sum(found, axis=(1, 2)), 1.0, rtol=1e-5)
    expected = quick_jit(lambda p: deconvolve.apply({"params": p}, y, found, estimate_noise_sigma(y)))(
        params["deconvolve"])
    np.testing.assert_allclose(blind["image"], expected, atol=ROUNDING)

def _perturbed_params(model, rng, *inputs):
    """Initial parameters moved at random: a prior that is not the identity."""
    params = quick_jit(model.init)(jax.random.key(0), *inputs)["params"]
    return jax.tree.map(lambda p: p + 0.05 * jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
