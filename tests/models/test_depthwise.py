"""Tests for the depthwise 3x3 convolution: the shifted form against XLA's grouped convolution (the
implementation it replaces on CPU), outputs and gradients (NAFNet's own test compares the models)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.models.depthwise import DepthwiseConv3x3, depthwise_conv3x3
from jdeblur.models.layers import torch_conv_init
from tests.models.model_fixtures import quick_jit


def _value_and_grads(implementation, x, kernel, weights):
    """A scalar of the convolution's output (weighted, so every output pixel matters differently) and its
    gradients with respect to the input and the kernel."""
    def scalar(x, kernel):
        return jnp.sum(jnp.sin(depthwise_conv3x3(x, kernel, implementation=implementation)) * weights)

    return quick_jit(jax.value_and_grad(scalar, argnums=(0, 1)))(x, kernel)


def test_shifted_form_equals_xla_convolution_with_gradients(rng):
    x = rng.standard_normal((2, 7, 10, 6)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 1, 6)).astype(np.float32)
    weights = rng.standard_normal((2, 7, 10, 6)).astype(np.float32)
    value, (grad_x, grad_kernel) = _value_and_grads("shifted", x, kernel, weights)
    ref_value, (ref_grad_x, ref_grad_kernel) = _value_and_grads("xla", x, kernel, weights)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(grad_x, ref_grad_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_kernel, ref_grad_kernel, rtol=1e-5, atol=1e-4)
    out = quick_jit(depthwise_conv3x3)(x, kernel)
    np.testing.assert_allclose(out, depthwise_conv3x3(x, kernel, implementation="xla"), atol=1e-5)
    per_image = quick_jit(jax.vmap(lambda image: depthwise_conv3x3(image[None], kernel)[0]))(x)
    np.testing.assert_allclose(per_image, out, atol=1e-6)


def test_layer_has_the_parameters_and_function_of_flax_grouped_conv(rng):
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    reference = nn.Conv(4, (3, 3), feature_group_count=4, kernel_init=torch_conv_init, name="conv2")
    layer = DepthwiseConv3x3(kernel_init=torch_conv_init, name="conv2")
    params = quick_jit(layer.init)(jax.random.key(3), x)
    jax.tree.map(np.testing.assert_array_equal, params, quick_jit(reference.init)(jax.random.key(3), x))
    params = {"params": {"kernel": rng.standard_normal((3, 3, 1, 4)).astype(np.float32),
                         "bias": rng.standard_normal(4).astype(np.float32)}}
    np.testing.assert_allclose(layer.apply(params, x), reference.apply(params, x), atol=1e-5)
    low = layer.clone(dtype=jnp.bfloat16).apply(params, x)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(low.astype(np.float32), reference.apply(params, x), rtol=2e-2, atol=1e-2)


def test_bad_kernel_or_implementation_is_a_clear_error():
    with pytest.raises(ValueError, match=r"kernel: expected shape \(3, 3, 1, 4\)"):
        depthwise_conv3x3(jnp.zeros((1, 4, 4, 4)), jnp.zeros((3, 3, 4, 4)))
    with pytest.raises(ValueError, match="implementation"):
        depthwise_conv3x3(jnp.zeros((1, 4, 4, 4)), jnp.zeros((3, 3, 1, 4)), implementation="fft")
