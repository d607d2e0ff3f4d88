"""Building blocks shared by the restoration networks (feature maps are NHWC).

Images entering a model are NHWC float32 in [0, 1]; inside, features run in the model's compute
``dtype`` and the global residual is added back in float32 (``global_residual``).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_rank

ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": nn.leaky_relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}

# PyTorch's default Conv2d weight init (kaiming_uniform with a=sqrt(5)) is U(-1/sqrt(fan_in),
# 1/sqrt(fan_in)), i.e. variance 1/(3 fan_in). The reference NAFNet trains from it, so using it keeps
# the published learning rates meaningful here.
torch_conv_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def activation(name: str):
    """The activation function called ``name`` (one of ``ACTIVATIONS``)."""
    check_choice(name, "activation", ACTIVATIONS)
    return ACTIVATIONS[name]


def check_image_shape(x, size_multiple: int) -> None:
    """Raises ValueError unless ``x`` is NHWC with H and W multiples of ``size_multiple``."""
    check_rank(x, "x", (4,), "NHWC images")
    height, width = x.shape[1:3]
    if height % size_multiple or width % size_multiple:
        raise ValueError(
            f"x: expected height and width multiples of {size_multiple} (the model's size_multiple; "
            f"jdeblur.infer.restore pads any size), got shape {tuple(x.shape)}"
        )


def global_residual(x, correction):
    """The restored image: the float32 input plus the network's predicted correction."""
    return x.astype(jnp.float32) + correction.astype(jnp.float32)


def pixel_shuffle(x, factor: int):
    """Rearranges (N, H, W, C * f * f) into (N, H * f, W * f, C), with PyTorch's channel order.

    Output channel ``c`` at sub-pixel (i, j) reads input channel ``c * f * f + i * f + j``, as
    ``torch.nn.PixelShuffle`` does, so weights ported from NCHW models keep their meaning.
    """
    n, h, w, channels = x.shape
    if channels % (factor * factor):
        raise ValueError(f"x: expected channels divisible by factor**2 = {factor * factor}, got {channels}")
    x = x.reshape(n, h, w, channels // (factor * factor), factor, factor)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * factor, w * factor, channels // (factor * factor))


def pixel_unshuffle(x, factor: int):
    """The inverse of ``pixel_shuffle``: (N, H, W, C) into (N, H / f, W / f, C * f * f) (``torch.nn.PixelUnshuffle``)."""
    n, h, w, channels = x.shape
    if h % factor or w % factor:
        raise ValueError(f"x: expected height and width divisible by {factor}, got shape {tuple(x.shape)}")
    x = x.reshape(n, h // factor, factor, w // factor, factor, channels)
    x = x.transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h // factor, w // factor, channels * factor * factor)


class TransposeConv2x2(nn.Module):
    """``nn.ConvTranspose(features, (2, 2), strides=(2, 2), padding='VALID')`` as one matrix product
    per input pixel: the same parameters (``kernel`` (2, 2, in, out) and ``bias``, same
    initialisation, so checkpoints of either load in the other) and the same function.

    Why: XLA:CPU runs the kernel gradient of a stride-2 transposed convolution as a dilated
    convolution in its generic loop, not a library kernel; in the U-Net experiment's step the three
    up-convolutions' gradients took a third of the time. As an einsum, forward and both gradients
    are matrix products: the step ran 1.23-1.48x faster (benchmarks/README.md).
    """

    features: int
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, h, w, channels = x.shape
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, channels, self.features),
                            self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        # lax.conv_transpose (VALID, stride 2) writes input pixel (h, w) times kernel[1 - i, 1 - j]
        # to output pixel (2h + i, 2w + j).
        y = jnp.einsum("nhwc,ijco->nhiwjo", x, kernel[::-1, ::-1])
        return y.reshape(n, 2 * h, 2 * w, self.features) + bias


class ConvAsProduct(nn.Module):
    """The fields and parameters of ``nn.Conv(features, window)``, for the convolutions below that are
    written as matrix products: checkpoints of either load in the other."""

    features: int
    use_bias: bool = True
    kernel_init: object = nn.initializers.lecun_normal()
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    def promoted_params(self, x, window: tuple[int, int]):
        """``x``, ``kernel`` (*window, in, out) and ``bias`` in the compute dtype; without a bias
        parameter, ``bias`` is a zero scalar (adding it is folded away by XLA)."""
        kernel = self.param("kernel", self.kernel_init, (*window, x.shape[-1], self.features), self.param_dtype)
        bias = (self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype) if self.use_bias
                else jnp.zeros((), self.param_dtype))
        return nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)


class StridedConv2x2(ConvAsProduct):
    """``nn.Conv(features, (2, 2), strides=(2, 2), padding='VALID')`` as one matrix product per output
    pixel over its 2x2 input patch: the same parameters (``kernel`` (2, 2, in, out), ``bias``, same
    initialisation) and the same function.

    Why: XLA:CPU computes the kernel gradient of a stride-2 convolution in its generic convolution
    loop: 36 ms of NAFNet width 32's 2x128x128 training step for the first downsampling alone, a
    134 MFLOP product (benchmarks/README.md). As an einsum over the patches, forward and both
    gradients are matrix products.
    """

    @nn.compact
    def __call__(self, x):
        n, h, w, channels = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"x: expected even height and width, got shape {tuple(x.shape)}")
        x, kernel, bias = self.promoted_params(x, (2, 2))
        patches = x.reshape(n, h // 2, 2, w // 2, 2, channels)
        return jnp.einsum("nhiwjc,ijco->nhwo", patches, kernel) + bias


class Conv3x3(ConvAsProduct):
    """``nn.Conv(features, (3, 3))`` (stride 1, zero 'SAME' padding) as one matrix product: the same
    parameters (``kernel`` (3, 3, in, out), ``bias``, same initialisation) and the same function.

    Every tap's product at every pixel ([pixels, in] @ [in, 9 out]), then the nine products summed
    at their shifts: forward and both gradients are matrix products plus shifted sums. Why: XLA:CPU
    computes the kernel gradient of a convolution to a few channels (NAFNet's ending, 32 -> 3) in
    its generic convolution loop: 46.7 ms for its forward and gradients at 2x128x128 against 7.9 ms
    (benchmarks/README.md). The nine-fold product is small only when the outputs are few: for 3 ->
    32 (NAFNet's intro) XLA's convolution was faster, also against each pixel's neighbourhood as one
    row of a product (3.96 vs 6.39 ms).
    """

    @nn.compact
    def __call__(self, x):
        n, h, w, channels = x.shape
        x, kernel, bias = self.promoted_params(x, (3, 3))
        taps = x.reshape(-1, channels) @ kernel.transpose(2, 0, 1, 3).reshape(channels, 9 * self.features)
        taps = jnp.pad(taps.reshape(n, h, w, 9, self.features), ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)))
        # Output pixel p sums x[p + (i - 1, j - 1)] @ kernel[i, j]: tap (i, j) of padded pixel p + (i, j).
        return sum(taps[:, i:i + h, j:j + w, 3 * i + j] for i in range(3) for j in range(3)) + bias


class Conv1x1(ConvAsProduct):
    """``nn.Conv(features, (1, 1))`` as one matrix product over the flattened pixels: the same
    parameters (``kernel`` (1, 1, in, out), ``bias``, same initialisation) and the same function.

    Why: XLA:CPU computes the kernel gradient of a 1x1 convolution as a convolution over layout
    copies (transposes) of both feature maps, and inside a ``lax.scan`` body in its generic loop, 10-100x
    slower; as a matrix product, forward and both gradients are matrix products in any context.
    """

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        x, kernel, bias = self.promoted_params(x, (1, 1))
        return (x.reshape(-1, channels) @ kernel[0, 0]).reshape(*x.shape[:-1], self.features) + bias


def simple_gate(x):
    """NAFNet's SimpleGate: splits the channels in two halves and multiplies them."""
    first, second = jnp.split(x, 2, axis=-1)
    return first * second


def channel_layer_norm(*, dtype, param_dtype, name: str) -> nn.LayerNorm:
    """LayerNorm over the channels of each pixel (PyTorch restoration code's ``LayerNorm2d``).

    Per-pixel statistics keep the network local (tiles see the same normalisation as the full
    image), unlike GroupNorm. The two-pass variance avoids E[x^2] - E[x]^2 cancellation.
    """
    return nn.LayerNorm(epsilon=1e-6, use_fast_variance=False, dtype=dtype, param_dtype=param_dtype, name=name)


def maybe_remat(module_cls, enabled: bool):
    """``nn.remat(module_cls)`` when enabled (recompute activations in the backward pass), else the class.

    Children are given explicit names, so the parameter tree is the same either way and a checkpoint
    trained with remat loads without it.
    """
    return nn.remat(module_cls) if enabled else module_cls


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree (arrays or ``jax.ShapeDtypeStruct``)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))
