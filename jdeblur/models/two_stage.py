"""Blind deblurring in two stages: the kernel estimated by a search with nothing to learn, then the
learned non-blind deconvolution.

Images are NHWC float32 in [0, 1]. A uniform blur is a global property of the image; the kernel
is estimated from the whole frame by the coarse-to-fine alternation of an L0-gradient latent image
and a least-squares kernel (``jdeblur.physics.blind_kernel``: Xu et al. CVPR 2013, Pan et al. CVPR
2014), the noise level by the wavelet estimator (``jdeblur.physics.noise``), and the unfolded
non-blind model (``jdeblur.models.unfolded``) deconvolves with both, where those classical
methods end with a hand-made non-blind deconvolution.

The first stage has no parameters, so there is nothing to learn through it, and a search run on
every training patch (32 or 64 pixels, too small to hold a kernel's evidence) would only slow the
step: in training the model is the non-blind model, given the true kernel and noise level that
synthetic training has (``training_inputs``). At evaluation, in ``deblur`` and through
``jdeblur.load`` it takes the blurred image alone (``inputs``) and sows the kernel it estimated
(``'intermediates'``, ``'kernel'``), which the sample grids show beside the true one.
"""
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_integer
from jdeblur.models.registry import build_variant
from jdeblur.models.unfolded import VARIANTS as DECONV_VARIANTS
from jdeblur.models.unfolded import Unfolded
from jdeblur.physics import blind_kernel
from jdeblur.physics.noise import estimate_noise_sigma

VARIANTS = {
    "tiny": dict(kernel_size=9, rounds=2, max_side=64, deconv="tiny"),
    "small": dict(kernel_size=19, deconv="small"),
}


class TwoStage(nn.Module):
    """Kernel search (no parameters) -> unfolded non-blind deconvolution (learned).

    Attributes:
      kernel_size: side of the estimated kernels (odd; at least the largest blur expected).
      lam, rounds, kernel_beta, kernel_threshold, keep, max_side: the search's settings
        (``jdeblur.physics.blind_kernel.estimate_kernel``: L0 weight, rounds per scale, kernel
        fit's Tikhonov weight, cut-off, fraction of latent gradients kept, crop side).
      deconv: the variant of ``jdeblur.models.unfolded`` that deconvolves.
    """

    inputs: ClassVar[tuple[str, ...]] = ("blurred",)
    training_inputs: ClassVar[tuple[str, ...]] = ("blurred", "kernel", "noise_sigma")
    estimates: ClassVar[tuple[str, ...]] = ("kernel",)

    kernel_size: int = 19
    lam: float = blind_kernel.LAM
    rounds: int = blind_kernel.ROUNDS
    kernel_beta: float = blind_kernel.KERNEL_BETA
    kernel_threshold: float = blind_kernel.KERNEL_THRESHOLD
    keep: float = blind_kernel.KEEP
    max_side: int = blind_kernel.MAX_SIDE
    deconv: str = "small"

    def __post_init__(self):
        check_choice(self.deconv, "deconv", DECONV_VARIANTS)
        for name, least in (("kernel_size", 3), ("rounds", 1), ("max_side", 16)):
            check_integer(getattr(self, name), name, least)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd size, got {self.kernel_size}")
        super().__post_init__()

    @property
    def size_multiple(self) -> int:
        return 1  # the unfolded model's 'valid' grid is padded inside

    def setup(self):
        self.deconvolve = Unfolded(**DECONV_VARIANTS[self.deconv], name="deconvolve")

    def estimate_kernel(self, blurred):
        """The kernels (B, size, size) the search finds in ``blurred`` (B, H, W, C)."""
        size = min(self.kernel_size, *blurred.shape[1:3])
        size -= 1 - size % 2
        return blind_kernel.estimate_kernel(blurred, size, lam=self.lam, rounds=self.rounds, beta=self.kernel_beta,
                                            threshold=self.kernel_threshold, keep=self.keep, max_side=self.max_side)

    def __call__(self, blurred, kernel=None, noise_sigma=None):
        """Restores ``blurred``; ``kernel`` and ``noise_sigma`` are given in training, else estimated."""
        y = jnp.asarray(blurred, jnp.float32)
        if kernel is None:
            kernel = self.estimate_kernel(y)
            self.sow("intermediates", "kernel", kernel)
        if noise_sigma is None:
            noise_sigma = jax.lax.stop_gradient(estimate_noise_sigma(y))
        return self.deconvolve(y, kernel, noise_sigma)


def Model(*, variant: str | None = None, **kw) -> TwoStage:
    """The two-stage blind model from preset ``variant`` ('tiny', 'small'; None: class defaults,
    i.e. 'small') with fields overridden by ``kw``."""
    return build_variant(TwoStage, VARIANTS, variant, kw)
