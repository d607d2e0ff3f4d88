"""A residual U-Net for blind deblurring, every design choice a field for ablations.

Images are NHWC float32 in [0, 1]; H and W must be multiples of ``size_multiple`` (2**depth),
``jdeblur.infer.restore`` pads any size. The network predicts the correction added to the blurred
input (global residual). Each level holds ``blocks`` pre-activation residual blocks
(norm, act, 3x3 conv, norm, act, 3x3 conv) whose last conv starts at zero, so the network starts
close to the identity map (SkipInit, De & Smith 2020); channels double at each of the ``depth``
downsamplings.

Receptive field: a 3x3 conv at a level downsampled by s widens it by 2s pixels, so the bottleneck
is where context is cheap. At the bottleneck 'small' sees 102 px and 'base' 266 px, several times
the 31-px motion kernels of the synthetic pipeline (deconvolution needs context beyond the kernel's
support). Normalisation 'none' and 'layer' (per pixel) keep the network local, so tiled inference
is exact once the overlap covers the receptive field; 'group' uses whole-image statistics and is not.
"""
import math

import flax.linen as nn
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_integer
from jdeblur.models.layers import (
    TransposeConv2x2,
    activation,
    channel_layer_norm,
    check_image_shape,
    global_residual,
    maybe_remat,
    pixel_shuffle,
    pixel_unshuffle,
)
from jdeblur.models.registry import build_variant

NORMALIZATIONS = ("none", "group", "layer")
DOWNSAMPLINGS = ("strided", "pool")
UPSAMPLINGS = ("transpose", "pixel_shuffle", "resize_conv")
SKIPS = ("add", "concat")

VARIANTS = {
    "tiny": dict(width=8, depth=2, blocks=1, middle_blocks=1),
    "small": dict(width=16, depth=3, blocks=1, middle_blocks=2),
    "base": dict(width=32, depth=4, blocks=2, middle_blocks=2),
}


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(norm(conv(act(norm(x)))))), last conv zero-initialised."""

    norm: str = "layer"
    activation: str = "gelu"
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        act = activation(self.activation)
        h = x
        for i in range(2):
            h = act(_normalization(self.norm, channels, self.dtype, self.param_dtype, f"norm{i}")(h))
            init = nn.initializers.zeros if i == 1 else nn.initializers.lecun_normal()
            h = nn.Conv(channels, (3, 3), kernel_init=init, dtype=self.dtype, param_dtype=self.param_dtype,
                        name=f"conv{i}")(h)
        return x + h


def _normalization(kind: str, channels: int, dtype, param_dtype, name: str):
    if kind == "none":
        return lambda x: x
    if kind == "layer":
        return channel_layer_norm(dtype=dtype, param_dtype=param_dtype, name=name)
    # Up to 32 groups (Wu & He 2018), fewer when the channel count does not divide.
    return nn.GroupNorm(num_groups=math.gcd(32, channels), dtype=dtype, param_dtype=param_dtype, name=name)


class UNet(nn.Module):
    """Residual U-Net predicting the correction added to the blurred input.

    Attributes:
      width: channels at full resolution, doubled at every level.
      depth: number of downsamplings; H and W must be multiples of 2**depth.
      blocks: residual blocks per encoder level and per decoder level.
      middle_blocks: residual blocks at the bottleneck.
      norm: 'none', 'group' (GroupNorm) or 'layer' (LayerNorm over the channels of each pixel).
      activation: a name in ``jdeblur.models.layers.ACTIVATIONS``.
      downsample: 'strided' (2x2 stride-2 conv) or 'pool' (2x2 average pool, then 1x1 conv).
      upsample: 'transpose' (2x2 stride-2 transposed conv, the original U-Net's up-convolution),
        'pixel_shuffle' (3x3 conv to 4C, then sub-pixel shuffle, Shi et al. 2016) or
        'resize_conv' (nearest-neighbour x2, then 3x3 conv; Odena et al. 2016, no checkerboard).
      skip: 'add' (encoder features added) or 'concat' (concatenated, then fused by a 1x1 conv).
      unshuffle: the image enters as ``unshuffle``x``unshuffle`` sub-images stacked on the channels
        (pixel unshuffle) and the correction leaves through the inverse shuffle, as FFDNet does
        (Zhang et al. 2018): every layer runs at 1/unshuffle^2 of the pixels, so the same FLOPs buy
        unshuffle^2 times the width or the steps, and the receptive field grows by that factor.
        1: full resolution.
      remat: recompute each block's activations in the backward pass to fit larger patches.
      dtype: compute dtype (float32 or bfloat16); param_dtype: parameter dtype.
    """

    width: int = 32
    depth: int = 4
    blocks: int = 2
    middle_blocks: int = 2
    norm: str = "layer"
    activation: str = "gelu"
    downsample: str = "strided"
    upsample: str = "pixel_shuffle"
    skip: str = "add"
    unshuffle: int = 1
    remat: bool = False
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    def __post_init__(self):
        check_choice(self.norm, "norm", NORMALIZATIONS)
        check_choice(self.downsample, "downsample", DOWNSAMPLINGS)
        check_choice(self.upsample, "upsample", UPSAMPLINGS)
        check_choice(self.skip, "skip", SKIPS)
        check_integer(self.unshuffle, "unshuffle", 1)
        activation(self.activation)
        super().__post_init__()

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (the unshuffle factor, then one halving per level)."""
        return self.unshuffle * 2 ** self.depth

    def _conv(self, features, kernel, name, **kw):
        return nn.Conv(features, kernel, dtype=self.dtype, param_dtype=self.param_dtype, name=name, **kw)

    def _stage(self, x, count: int, name: str):
        block_cls = maybe_remat(ResBlock, self.remat)
        for i in range(count):
            x = block_cls(norm=self.norm, activation=self.activation, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=f"{name}_block{i}")(x)
        return x

    def _down(self, x, name: str):
        channels = 2 * x.shape[-1]
        if self.downsample == "strided":
            return self._conv(channels, (2, 2), name, strides=(2, 2), padding="VALID")(x)
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        return self._conv(channels, (1, 1), name)(x)

    def _up(self, x, name: str):
        channels = x.shape[-1] // 2
        if self.upsample == "transpose":
            return TransposeConv2x2(channels, dtype=self.dtype, param_dtype=self.param_dtype, name=name)(x)
        if self.upsample == "pixel_shuffle":
            return pixel_shuffle(self._conv(4 * channels, (3, 3), name)(x), 2)
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return self._conv(channels, (3, 3), name)(x)

    def _merge(self, x, skip, name: str):
        if self.skip == "add":
            return x + skip
        return self._conv(x.shape[-1], (1, 1), name)(jnp.concatenate([x, skip], axis=-1))

    @nn.compact
    def __call__(self, images, condition=None):
        """Restores NHWC ``images``; ``condition`` (N, H, W, c), e.g. a noise-level map, enters
        beside them (concatenated on the channels) and is not part of the output."""
        check_image_shape(images, self.size_multiple)
        images = jnp.asarray(images, jnp.float32)
        x = images if condition is None else jnp.concatenate([images, jnp.asarray(condition, jnp.float32)], -1)
        x = pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        x = self._conv(self.width, (3, 3), "intro")(x.astype(self.dtype))
        skips = []
        for level in range(self.depth):
            x = self._stage(x, self.blocks, f"enc{level}")
            skips.append(x)
            x = self._down(x, f"down{level}")
        x = self._stage(x, self.middle_blocks, "middle")
        for level in reversed(range(self.depth)):
            x = self._merge(self._up(x, f"up{level}"), skips.pop(), f"merge{level}")
            x = self._stage(x, self.blocks, f"dec{level}")
        # Features are a sum of residuals: normalise and activate before the output conv.
        x = activation(self.activation)(_normalization(self.norm, x.shape[-1], self.dtype, self.param_dtype,
                                                       "out_norm")(x))
        # Zero-initialised like the blocks' last convs: the untrained network is exactly the
        # identity, so training starts from the blurred input's PSNR instead of from noise.
        channels = images.shape[-1] * self.unshuffle ** 2
        correction = self._conv(channels, (3, 3), "ending", kernel_init=nn.initializers.zeros)(x)
        if self.unshuffle > 1:
            correction = pixel_shuffle(correction, self.unshuffle)
        return global_residual(images, correction)


def Model(*, variant: str | None = None, **kw) -> UNet:
    """U-Net from preset ``variant`` ('tiny', 'small', 'base'; None = class defaults, i.e.
    base) with fields overridden by ``kw`` (e.g. ``norm='none', upsample='resize_conv'``)."""
    return build_variant(UNet, VARIANTS, variant, kw)
