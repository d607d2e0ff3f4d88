"""NAFNet (Chen et al. 2022, "Simple Baselines for Image Restoration", ECCV) with its test-time local converter.

Images are NHWC float32 in [0, 1]; H and W must be multiples of ``size_multiple`` (2**levels),
``jdeblur.infer.restore`` pads any size. The architecture follows the reference implementation
(megvii-research/NAFNet, ``NAFNet_arch.py``): 3x3 intro/ending convs, NAFBlocks (channel LayerNorm,
1x1 expand x2, 3x3 depthwise conv, SimpleGate, Simplified Channel Attention, 1x1; then a gated
FFN expanding x2; both branches scaled by per-channel beta/gamma initialised to zero), 2x2 stride-2
conv downsampling to 2C, 1x1 conv to 2C + PixelShuffle upsampling, additive skips, global residual.

TLC (Chu et al. 2022, "Improving Image Restoration by Revisiting Global Information Aggregation",
ECCV): trained on patches, SCA's global average is a statistic of a patch, but at test time of the
whole image. ``tlc=True`` replaces it by an average over a local window 1.5x the training patch
(scaled to each level's resolution), with the same parameters. Images no larger than the window
are pooled globally, as in training, so the output is unchanged for them.

Neither mode is local enough for exact tiling: global pooling sees the whole image, TLC windows
span 1.5 training patches (see ``jdeblur.infer``).

Kernels (``kernels``; the parameters and the function are the same either way): XLA:CPU runs the
depthwise convolutions and the kernel gradients of the 1x1 and stride-2 convolutions in slow generic
loops, and compiles each of the 28 identical blocks of the GoPro models separately. On CPU ('cpu',
what 'auto' picks there) the depthwise convolutions are shifted multiply-adds
(``jdeblur.models.depthwise``), the 1x1, the stride-2 downsampling and the 3x3 ending convolutions
matrix products (``Conv1x1``, ``StridedConv2x2``, ``Conv3x3``), and, in the trainer's module, each
run of identical blocks one ``lax.scan`` over their stacked parameters (``scan_blocks``: compiled
once, the training step compiles in half the time and runs faster than unrolled); applied alone
(evaluation, ``deblur``), the blocks are unrolled, which spares the copy of their stacked
parameters. Elsewhere ('xla') the blocks are unrolled with XLA's convolutions until measured
otherwise (``benchmarks/gpu_check.py``).
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jdeblur.checks import check_choice
from jdeblur.models.depthwise import DepthwiseConv3x3
from jdeblur.models.layers import (
    Conv1x1,
    Conv3x3,
    StridedConv2x2,
    channel_layer_norm,
    check_image_shape,
    global_residual,
    maybe_remat,
    pixel_shuffle,
    simple_gate,
    torch_conv_init,
)
from jdeblur.models.registry import build_variant

# The published GoPro configuration (NAFNet-GoPro-width32/64.yml); 17.11M and 67.89M parameters.
_GOPRO = dict(enc_blk_nums=(1, 1, 1, 28), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))
VARIANTS = {
    "tiny": dict(width=16, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1)),
    "width32": dict(width=32, **_GOPRO),
    "width64": dict(width=64, **_GOPRO),
}


KERNELS = ("auto", "cpu", "xla")


def resolve_kernels(kernels: str) -> str:
    """'cpu' or 'xla' for a ``kernels`` setting; 'auto' is 'cpu' when JAX's default backend is the CPU.

    Decided when the model is traced, from the default backend: a model traced for another
    platform than the default one computes the same function with the other platform's kernels.
    """
    check_choice(kernels, "kernels", KERNELS)
    if kernels == "auto":
        return "cpu" if jax.default_backend() == "cpu" else "xla"
    return kernels


def _conv_layer(owner: nn.Module, features: int, kernel: tuple[int, int], name: str, *, product=None,
               use_bias: bool = True, **kw) -> nn.Module:
    """``nn.Conv`` with PyTorch's initialisation in ``owner``'s dtypes; with ``owner``'s 'cpu' kernels,
    its matrix-product form ``product`` instead (``jdeblur.models.layers``: the same parameters)."""
    common = dict(use_bias=use_bias, kernel_init=torch_conv_init, dtype=owner.dtype,
                  param_dtype=owner.param_dtype, name=name)
    if product is not None and resolve_kernels(owner.kernels) == "cpu":
        return product(features, **common)
    return nn.Conv(features, kernel, **common, **kw)


def local_average_pool(x, window: tuple[int, int]):
    """Mean over sliding ``window`` (kh, kw) boxes, replicate-padded back to x's size, as TLC does.

    Returns the (N, 1, 1, C) global mean when the window covers the whole feature map (the
    reference's rule: kh >= H and kw >= W); otherwise (N, H, W, C): the means of the windows that fit
    inside the map (each dimension's window clipped to the map), padded with edge values, (k - 1) // 2
    before and k // 2 after per axis (k the clipped window), like the reference's ``AvgPool2d``.

    Box sums come from an integral image (two cumsums): O(HW) whatever the window. The map is
    centred on its mean first to keep float32 prefix sums small: on a 2048x3072 map with 384-px
    windows the means are within 4e-6 of a float64 computation.
    """
    _, height, width, _ = x.shape
    if window[0] >= height and window[1] >= width:
        return jnp.mean(x, axis=(1, 2), keepdims=True)
    kh, kw = min(window[0], height), min(window[1], width)
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    integral = jnp.cumsum(jnp.cumsum(x - mean, axis=1), axis=2)
    integral = jnp.pad(integral, ((0, 0), (1, 0), (1, 0), (0, 0)))
    box = (integral[:, kh:, kw:] - integral[:, :-kh, kw:]
           - integral[:, kh:, :-kw] + integral[:, :-kh, :-kw])
    local = box / (kh * kw) + mean
    # Edge padding as a gather of clipped rows and columns: the same values as jnp.pad(mode='edge'),
    # 2.3x faster on CPU (256x384x64: 1.8 vs 4.3 ms), and ONNX-exportable (jax2onnx 0.17 turns
    # jnp.pad's zero-width edge pieces into one-pixel ones).
    rows = np.clip(np.arange(height) - (height - local.shape[1]) // 2, 0, local.shape[1] - 1)
    cols = np.clip(np.arange(width) - (width - local.shape[2]) // 2, 0, local.shape[2] - 1)
    return local[:, rows][:, :, cols]


def tlc_window(train_size: tuple[int, int], stride: int, *, size_multiple: int = 1) -> tuple[int, int]:
    """TLC's pooling window at a level downsampled by ``stride``: 1.5x the training patch, at that scale.

    The reference (``local_arch.py``) measures it on the feature map a training-size input makes
    inside the model, after the model zero-padded it to ``size_multiple``: (padded // stride) *
    int(1.5 * train) // train, so we do too (256 -> 384, 192, 96, 48, 24; 200 -> 312, 156, ...).
    """
    padded = [-(-size // size_multiple) * size_multiple for size in train_size]
    return tuple((pad // stride) * int(size * 1.5) // size for pad, size in zip(padded, train_size))


def _selected_by_product(stacked_leaf) -> bool:
    """Whether a scanned run reads this parameter by its one-hot product (``NAFNet._stage``): all
    but the 1x1 convolutions' kernels, stacked as (blocks, 1, 1, in, out)."""
    return not (stacked_leaf.ndim == 5 and stacked_leaf.shape[1:3] == (1, 1))


class NAFBlock(nn.Module):
    """One NAFBlock; ``pool_window`` None pools SCA globally, else locally (TLC) over that window."""

    dw_expand: int = 2
    ffn_expand: int = 2
    pool_window: tuple[int, int] | None = None
    kernels: str = "auto"
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    @nn.compact
    def __call__(self, inputs):
        channels = inputs.shape[-1]
        kernels = resolve_kernels(self.kernels)

        def conv(features, name):
            """A 1x1 convolution."""
            return _conv_layer(self, features, (1, 1), name, product=Conv1x1)

        def norm(name):
            return channel_layer_norm(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

        def scale(name):
            # Zero-initialised: every block starts as the identity, so the deep network trains stably.
            return self.param(name, nn.initializers.zeros, (channels,), self.param_dtype).astype(self.dtype)

        hidden = channels * self.dw_expand
        x = conv(hidden, "conv1")(norm("norm1")(inputs))
        x = DepthwiseConv3x3(kernel_init=torch_conv_init, implementation="shifted" if kernels == "cpu" else "xla",
                             dtype=self.dtype, param_dtype=self.param_dtype, name="conv2")(x)
        x = simple_gate(x)
        x = x * self._channel_attention(x, conv)
        x = conv(channels, "conv3")(x)
        y = inputs + x * scale("beta")

        x = conv(channels * self.ffn_expand, "conv4")(norm("norm2")(y))
        x = conv(channels, "conv5")(simple_gate(x))
        return y + x * scale("gamma")

    def _channel_attention(self, x, conv):
        """Simplified Channel Attention: a 1x1 conv of the (global or TLC-local) channel means."""
        if self.pool_window is None:
            pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True)
        else:
            pooled = local_average_pool(x.astype(jnp.float32), self.pool_window)
        return conv(x.shape[-1], "sca")(pooled.astype(self.dtype))


class NAFNet(nn.Module):
    """NAFNet: a U-shaped stack of NAFBlocks predicting the correction added to the blurred input.

    Attributes:
      width: channels at full resolution, doubled at every level.
      enc_blk_nums: NAFBlocks per encoder level (its length is the number of levels).
      middle_blk_num: NAFBlocks at the lowest resolution.
      dec_blk_nums: NAFBlocks per decoder level, deepest first; same length as enc_blk_nums.
      dw_expand, ffn_expand: channel expansion of the depthwise and feed-forward branches.
      tlc: pool SCA over local windows (test-time local converter) instead of globally.
      train_size: training patch size (int or (h, w)) that sets the TLC window (1.5x).
      remat: recompute each block's activations in the backward pass (memory for compute).
      kernels: how the blocks run: 'cpu' (shifted depthwise, matrix-product 1x1 convolutions,
        runs of identical blocks scanned with ``scan_blocks``), 'xla' (XLA's convolutions, unrolled) or 'auto' ('cpu'
        on a CPU backend); the same parameters and function either way (module docstring).
      scan_blocks: with the 'cpu' kernels, run each run of identical blocks as one ``lax.scan``
        over their stacked parameters. The trainer's module (``for_training``) does: its step
        compiles in half the time and runs faster; applied alone, the unrolled blocks are faster
        (the stacked copy of 28 blocks' parameters was 37% of the 256x256 forward pass).
      dtype: compute dtype (float32 or bfloat16); param_dtype: parameter dtype.
    """

    width: int = 32
    enc_blk_nums: tuple[int, ...] = _GOPRO["enc_blk_nums"]
    middle_blk_num: int = _GOPRO["middle_blk_num"]
    dec_blk_nums: tuple[int, ...] = _GOPRO["dec_blk_nums"]
    dw_expand: int = 2
    ffn_expand: int = 2
    tlc: bool = False
    train_size: int | tuple[int, int] = 256
    remat: bool = False
    kernels: str = "auto"
    scan_blocks: bool = False
    dtype: object = jnp.float32
    param_dtype: object = jnp.float32

    def __post_init__(self):
        if len(self.enc_blk_nums) != len(self.dec_blk_nums):
            raise ValueError(
                f"dec_blk_nums: expected as many levels as enc_blk_nums {self.enc_blk_nums}, got {self.dec_blk_nums}"
            )
        super().__post_init__()

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (one halving per encoder level)."""
        return 2 ** len(self.enc_blk_nums)

    def _blocks(self, count: int, stride: int, name: str):
        block_cls = maybe_remat(NAFBlock, self.remat)
        train_size = (self.train_size,) * 2 if isinstance(self.train_size, int) else tuple(self.train_size)
        window = tlc_window(train_size, stride, size_multiple=self.size_multiple) if self.tlc else None
        return [block_cls(dw_expand=self.dw_expand, ffn_expand=self.ffn_expand, pool_window=window,
                          kernels=self.kernels, dtype=self.dtype, param_dtype=self.param_dtype,
                          name=f"{name}_block{i}")
                for i in range(count)]

    def _stage(self, x, count: int, stride: int, name: str):
        """``count`` NAFBlocks named ``{name}_block{i}`` applied in turn (one ``lax.scan`` with ``scan_blocks``)."""
        blocks = self._blocks(count, stride, name)
        if count < 2 or not self.scan_blocks or resolve_kernels(self.kernels) == "xla" or self.is_initializing():
            for block in blocks:
                x = block(x)
            return x
        # The parameters stay one subtree per block (checkpoints and converted weights unchanged);
        # the scan reads them stacked, and the gradient flows back through the stack.
        params = self.variables["params"]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(params[block.name] for block in blocks))
        # XLA:CPU's fusion emitters run an elementwise loop ~4x slower when it reads a slice at a
        # dynamic index (the depthwise convolution and gate at 2x16x16x512: 0.82 against 0.21 ms), and
        # the scan's slices of the small parameters (biases, scales, depthwise kernels) are fused into
        # such loops. A product with the block's one-hot row selects them instead, into a buffer of
        # their own (exactly, for finite parameters: the other rows are multiplied by zero); the 1x1
        # kernels feed matrix products, which read their slice at full speed. NAFNet width 32's
        # 2x128x128 training step: 1.12x (benchmarks/README.md).
        selected = jax.tree.map(_selected_by_product, stacked)
        sliced = jax.tree.map(lambda leaf, by_product: None if by_product else leaf, stacked, selected)
        body = blocks[0].clone(parent=None, name=None)

        def apply_block(h, xs):
            own_slices, one_hot = xs
            p = jax.tree.map(lambda leaf, by_product, own: jnp.tensordot(one_hot.astype(leaf.dtype), leaf, axes=1)
                             if by_product else own, stacked, selected, own_slices)
            return body.apply({"params": p}, h), None

        x, _ = jax.lax.scan(apply_block, x, (sliced, jnp.eye(count)))
        return x

    def for_training(self) -> "NAFNet":
        """The module the trainer differentiates (``registry.apply_model``): with ``scan_blocks``."""
        return self.clone(scan_blocks=True)

    @nn.compact
    def __call__(self, images):
        check_image_shape(images, self.size_multiple)
        images = jnp.asarray(images, jnp.float32)
        conv = functools.partial(_conv_layer, self)

        x = conv(self.width, (3, 3), "intro")(images.astype(self.dtype))
        skips = []
        channels, stride = self.width, 1
        for level, count in enumerate(self.enc_blk_nums):
            x = self._stage(x, count, stride, f"enc{level}")
            skips.append(x)
            channels, stride = channels * 2, stride * 2
            x = conv(channels, (2, 2), f"down{level}", product=StridedConv2x2, strides=(2, 2), padding="VALID")(x)

        x = self._stage(x, self.middle_blk_num, stride, "middle")

        for level, count in enumerate(self.dec_blk_nums):
            x = conv(channels * 2, (1, 1), f"up{level}", product=Conv1x1, use_bias=False)(x)
            x = pixel_shuffle(x, 2) + skips.pop()
            channels, stride = channels // 2, stride // 2
            x = self._stage(x, count, stride, f"dec{level}")

        correction = conv(images.shape[-1], (3, 3), "ending", product=Conv3x3)(x)
        return global_residual(images, correction)


def Model(*, variant: str | None = None, **kw) -> NAFNet:
    """NAFNet from preset ``variant`` ('tiny', 'width32', 'width64'; None = class defaults, i.e.
    width32) with fields overridden by ``kw`` (e.g. ``tlc=True, train_size=256``)."""
    return build_variant(NAFNet, VARIANTS, variant, kw)
