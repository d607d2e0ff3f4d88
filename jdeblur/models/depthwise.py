"""Depthwise 3x3 convolution (one 3x3 filter per channel, zero 'SAME' padding) that is fast on CPU.

Feature maps are NHWC. ``DepthwiseConv3x3`` has the parameters of ``nn.Conv(C, (3, 3),
feature_group_count=C)`` (``kernel`` (3, 3, 1, C), ``bias`` (C,), same initialisation) and computes
the same function, so checkpoints of either load in the other.

Why: XLA:CPU runs a convolution with one channel per group in its generic convolution loop, not a
library kernel: 111 ms at 1x256x256x64 where PyTorch takes 6.5 ms, and its gradients are slower
still (benchmarks/README.md). Written as nine shifted multiply-adds, the forward pass is one fused
elementwise loop (outputs within 4e-6). Its gradients are written out too (``custom_vjp``): the
input gradient is the same nine shifts with the kernel flipped; the kernel gradient is nine sums of
products.

On other backends (GPU, TPU) XLA's own convolution stays until the shifted form is measured faster
there (``benchmarks/gpu_check.py`` times both); ``jdeblur.models.nafnet`` picks per backend.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jdeblur.checks import check_choice

IMPLEMENTATIONS = ("shifted", "xla")


def _xla_depthwise(x, kernel):
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=x.shape[-1])


def _shifted_sum(x, kernel):
    """sum over (i, j) of x shifted by (i - 1, j - 1) times kernel[i, j, 0]: the correlation, zero-padded."""
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = kernel.astype(jnp.float32)
    out = None
    for i in range(3):
        for j in range(3):
            term = padded[:, i:i + height, j:j + width].astype(jnp.float32) * taps[i, j, 0]
            out = term if out is None else out + term
    return out.astype(x.dtype)


def _kernel_gradient(x, grad):
    """d(loss)/d(kernel) of ``_shifted_sum``: sum over n, h, w of x shifted by (i - 1, j - 1) times ``grad``.

    Nine separate sums of products: NAFNet width 32's 2x128x128 training step ran 1.07x faster
    than with the one variadic reduction over the nine products used before (alone: 0.9 vs 1.9 ms
    at 2x16x16x512, where 28 of its blocks run; 15.5 vs 21.2 ms at 2x128x128x64; 2.6 vs 2.2 ms
    at 2x32x32x256; benchmarks/README.md).
    """
    _, height, width, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(jnp.float32)
    grad = grad.astype(jnp.float32)
    taps = [(padded[:, i:i + height, j:j + width] * grad).sum(axis=(0, 1, 2)) for i in range(3) for j in range(3)]
    return jnp.stack(taps).reshape(3, 3, 1, x.shape[-1])


@jax.custom_vjp
def _shifted_depthwise(x, kernel):
    return _shifted_sum(x, kernel)


def _shifted_forward(x, kernel):
    return _shifted_sum(x, kernel), (x, kernel)


def _shifted_backward(residuals, grad):
    x, kernel = residuals
    # The adjoint of a zero-padded correlation is the correlation with the flipped kernel.
    grad_x = _shifted_sum(grad, kernel[::-1, ::-1])
    return grad_x, _kernel_gradient(x, grad).astype(kernel.dtype)


_shifted_depthwise.defvjp(_shifted_forward, _shifted_backward)


def depthwise_conv3x3(x, kernel, *, implementation: str = "shifted"):
    """Correlates each channel of NHWC ``x`` with its own 3x3 filter, zero-padded to the same size.

    Args:
      x: (N, H, W, C) feature map.
      kernel: (3, 3, 1, C) filters, as ``nn.Conv(..., feature_group_count=C)`` holds them.
      implementation: 'shifted' (nine shifted multiply-adds) or 'xla' (``lax.conv_general_dilated``).

    Returns:
      (N, H, W, C) in x's dtype.
    """
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    if kernel.shape != (3, 3, 1, x.shape[-1]):
        raise ValueError(f"kernel: expected shape (3, 3, 1, {x.shape[-1]}), got {tuple(kernel.shape)}")
    if implementation == "shifted":
        return _shifted_depthwise(x, kernel)
    return _xla_depthwise(x, kernel)


class DepthwiseConv3x3(nn.Module):
    """``nn.Conv(C, (3, 3), feature_group_count=C)`` (C the input's channels) through ``depthwise_conv3x3``."""

    kernel_init: object = nn.initializers.lecun_normal()
    implementation: str = "shifted"
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (3, 3, 1, channels), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (channels,), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return depthwise_conv3x3(x, kernel, implementation=self.implementation) + bias
