"""Blind deblurring through the physics: estimate the kernel from the whole image, then deconvolve.

Images are NHWC float32 in [0, 1]. A uniform blur is a global property of the image, which a
local CNN cannot see; so the blind problem is split where the imaging model allows:

1. a U-Net (the estimator) makes a sharp estimate ``x_hat`` of the blurred image ``y``;
2. the kernel is the least-squares fit of ``y`` by ``k * x_hat`` over the whole frame, closed form
   in the Fourier domain, made a valid kernel (non-negative, summing to 1, centred:
   ``jdeblur.physics.kernel_estimation``), as in the learned blind deconvolution of Schuler et
   al. (TPAMI 2016) and the kernel step of Cho & Lee (2009);
3. the noise level is estimated from ``y`` (``jdeblur.physics.noise.estimate_noise_sigma``);
4. the non-blind unfolded model (``jdeblur.models.unfolded``) deconvolves ``y`` with them;
5. optionally (``refinements``), the kernel is fitted again against that sharper result and
   ``y`` deconvolved again.

Everything is differentiable, so the whole is trained end to end; the estimated kernel and the
estimator's sharp estimate are sown (``'intermediates'``: ``'kernel'``, ``'sharp_estimate'``) so
that losses can supervise them with the true kernels and sharp images that synthetic training has
(``config.loss.kernel_l1``, ``config.loss.sharp_estimate_l1``), and so that evaluations can show
the kernel. The estimator needs the second: untrained, it is the identity, whose least-squares
kernel is the identity blur; projected (one pixel left, normalised to 1), that kernel passes no
gradient back, so the estimator would never move from the loss of the final image alone.
"""
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdeblur.checks import check_choice, check_integer
from jdeblur.models.registry import build_variant
from jdeblur.models.unet import UNet
from jdeblur.models.unfolded import VARIANTS as DECONV_VARIANTS
from jdeblur.models.unfolded import Unfolded
from jdeblur.physics.kernel_estimation import least_squares_kernel, project_kernel
from jdeblur.physics.noise import estimate_noise_sigma

VARIANTS = {
    "tiny": dict(estimator_width=8, estimator_depth=2, kernel_size=9, deconv="tiny"),
    "small": dict(estimator_width=16, estimator_depth=3, kernel_size=19, deconv="small"),
}


class BlindUnfolded(nn.Module):
    """Estimator U-Net -> least-squares kernel -> unfolded non-blind deconvolution (-> refit, again).

    Attributes:
      estimator_width, estimator_depth: the estimator U-Net's width and depth (ReLU, no norm).
      kernel_size: side of the estimated kernels (at least the largest blur expected).
      kernel_beta: Tikhonov weight of the kernel fit (relative to the sharp image's energy).
      kernel_threshold: kernel values below this fraction of the maximum are cut.
      refinements: further (kernel fit, deconvolution) rounds on the deconvolved estimate.
      deconv: the variant of ``jdeblur.models.unfolded`` that deconvolves.
    """

    inputs: ClassVar[tuple[str, ...]] = ("blurred",)
    estimates: ClassVar[tuple[str, ...]] = ("kernel", "sharp_estimate")

    estimator_width: int = 16
    estimator_depth: int = 3
    kernel_size: int = 19
    kernel_beta: float = 1e-2
    kernel_threshold: float = 0.05
    refinements: int = 0
    deconv: str = "small"

    def __post_init__(self):
        check_choice(self.deconv, "deconv", DECONV_VARIANTS)
        for name, least in (("kernel_size", 3), ("refinements", 0), ("estimator_depth", 1), ("estimator_width", 1)):
            check_integer(getattr(self, name), name, least)
        super().__post_init__()

    @property
    def size_multiple(self) -> int:
        return 2 ** self.estimator_depth

    def setup(self):
        self.estimator = UNet(width=self.estimator_width, depth=self.estimator_depth, blocks=1, middle_blocks=2,
                              norm="none", activation="relu", upsample="transpose", name="estimator")
        self.deconvolve = Unfolded(**DECONV_VARIANTS[self.deconv], name="deconvolve")

    def estimate_kernel(self, blurred, sharp):
        """The valid kernel (B, size, size) fitting ``blurred`` by ``kernel * sharp``."""
        raw = least_squares_kernel(blurred, sharp, self.kernel_size, beta=self.kernel_beta)
        return project_kernel(raw, threshold=self.kernel_threshold)

    def __call__(self, blurred):
        y = jnp.asarray(blurred, jnp.float32)
        sigma = jax.lax.stop_gradient(estimate_noise_sigma(y))
        sharp = self.estimator(y)
        self.sow("intermediates", "sharp_estimate", sharp)
        for _ in range(self.refinements + 1):
            kernel = self.estimate_kernel(y, sharp)
            sharp = self.deconvolve(y, kernel, sigma)
        self.sow("intermediates", "kernel", kernel)
        return sharp


def Model(*, variant: str | None = None, **kw) -> BlindUnfolded:
    """The blind unfolded model from preset ``variant`` ('tiny', 'small'; None: class defaults,
    i.e. 'small') with fields overridden by ``kw``."""
    return build_variant(BlindUnfolded, VARIANTS, variant, kw)
