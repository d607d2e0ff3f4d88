"""Training losses for restoration, and a weighted sum of them built from a config.

Images are NHWC (or HWC) float32 in [0, 1]. Every loss takes ``(pred, target)`` and returns a
scalar: the mean over the batch (for the pixel losses, the mean over every element, which is
the same thing for equally sized images). All are jittable, vmappable and have finite
gradients where ``pred == target``. ``ESTIMATE_LOSSES`` compare what a model estimates on the
way (``jdeblur.models.registry.model_estimates``) with its truth: a blind model's kernels
(N, kh, kw) with the true ones, its first sharp estimate with the sharp image (deep supervision,
which also trains the part of a model whose output only reaches the loss through a kernel fit).
"""
from typing import Callable

import jax.numpy as jnp

from jdeblur import metrics
from jdeblur.checks import check_positive
from jdeblur.errors import UserError

# MPRNet and Restormer train with Charbonnier sqrt(d**2 + eps**2), eps = 1e-3.
CHARBONNIER_EPS = 1e-3
# NAFNet's PSNRLoss (basicsr/models/losses/losses.py): 10 / ln(10) * log(mse + 1e-8).
PSNR_LOSS_EPS = 1e-8


def l1_loss(pred, target):
    """Mean absolute error."""
    metrics.check_image_pair(pred, target)
    return jnp.mean(jnp.abs(pred - target))


def mse_loss(pred, target):
    """Mean squared error."""
    metrics.check_image_pair(pred, target)
    return jnp.mean((pred - target) ** 2)


def charbonnier_loss(pred, target, *, eps: float = CHARBONNIER_EPS):
    """Mean of ``sqrt((pred - target)**2 + eps**2)``, a smooth L1 (MPRNet, Restormer)."""
    metrics.check_image_pair(pred, target)
    return jnp.mean(jnp.sqrt((pred - target) ** 2 + eps**2))


def psnr_loss(pred, target, *, eps: float = PSNR_LOSS_EPS):
    """Minus PSNR as NAFNet trains: the batch mean of ``10 log10(mse + eps)``, one MSE per image.

    The log of each image's own MSE weights images by their relative, not absolute, error;
    ``eps`` keeps it finite at ``pred == target``. Equal to ``-psnr`` (data range 1) up to eps.
    """
    metrics.check_image_pair(pred, target)
    mse = jnp.mean((pred - target) ** 2, axis=(-3, -2, -1))
    return jnp.mean(10.0 * jnp.log10(mse + eps))


def ssim_loss(pred, target):
    """``1 - SSIM`` in the pinned convention, averaged over the batch (reverse-mode differentiable only)."""
    return 1.0 - jnp.mean(metrics.ssim(pred, target))


def ms_ssim_loss(pred, target, *, weights=metrics.MS_SSIM_WEIGHTS):
    """``1 - MS-SSIM``, averaged over the batch.

    The default 5 scales need patches of at least 161x161; fewer ``weights`` allow smaller
    patches (see ``metrics.ms_ssim``). ``make_loss`` uses the default.
    """
    return 1.0 - jnp.mean(metrics.ms_ssim(pred, target, weights=weights))


def fft_l1_loss(pred, target, *, onesided: bool = True):
    """L1 distance of the 2-D spectra over H and W, real and imaginary parts (MIMO-UNet).

    The mean of ``|Re|`` and ``|Im|`` of ``F(pred) - F(target)`` over every entry, with the
    unnormalised FFT. MIMO-UNet weights it 0.1 next to L1. ``onesided=True`` takes rfft2 (the
    non-redundant half, as ports to ``torch.fft.rfft2`` do); ``False`` the full spectrum, as
    the original ``torch.rfft(..., onesided=False)`` did; the two means differ slightly.
    """
    metrics.check_image_pair(pred, target)
    # The FFT is linear: one transform of the difference equals the difference of transforms.
    transform = jnp.fft.rfft2 if onesided else jnp.fft.fft2
    spectrum = transform(pred - target, axes=(-3, -2))
    return 0.5 * (jnp.mean(jnp.abs(spectrum.real)) + jnp.mean(jnp.abs(spectrum.imag)))


def kernel_l1_loss(pred, target):
    """Batch mean of ``sum |pred - target|`` over each kernel's pixels (twice the total-variation
    distance of two kernels that sum to 1); kernels of different sizes are compared centred."""
    shape = max(pred.shape[-2], target.shape[-2]), max(pred.shape[-1], target.shape[-1])
    pred, target = _pad_centred(pred, shape), _pad_centred(target, shape)
    return jnp.mean(jnp.sum(jnp.abs(pred - target), axis=(-2, -1)))


def _pad_centred(kernel, shape):
    """Zero-pads (..., kh, kw) kernels to ``shape`` keeping the centre pixel (index s // 2) the centre."""
    pad = [(0, 0)] * (kernel.ndim - 2)
    for size, new in zip(kernel.shape[-2:], shape):
        before = new // 2 - size // 2
        pad.append((before, new - size - before))
    return jnp.pad(kernel, pad)


LOSSES: dict[str, Callable] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "charbonnier": charbonnier_loss,
    "psnr": psnr_loss,
    "ssim": ssim_loss,
    "ms_ssim": ms_ssim_loss,
    "fft_l1": fft_l1_loss,
}
# name -> (loss, the model's estimate it scores, the target it compares it with).
ESTIMATE_LOSSES: dict[str, tuple[Callable, str, str]] = {
    "kernel_l1": (kernel_l1_loss, "kernel", "kernel"),
    "sharp_estimate_l1": (l1_loss, "sharp_estimate", "image"),
}


def check_loss_config(cfg) -> dict[str, float]:
    """The positive weights of ``config.loss`` by name; raises UserError naming a bad field.

    Raises:
      UserError: for an unknown name (listing the valid ones), a negative or non-finite weight,
        or no image loss with a positive weight.
    """
    weights = {}
    known = {**LOSSES, **ESTIMATE_LOSSES}
    for name, weight in cfg.items():
        if name not in known:
            raise UserError(f"config.loss.{name}: unknown loss {name!r}; valid names are {sorted(known)}")
        check_positive(weight, f"config.loss.{name}", allow_zero=True)
        if weight:
            weights[name] = float(weight)
    if not any(name in LOSSES for name in weights):
        raise UserError(f"config.loss: expected at least one image loss with a positive weight, "
                        f"got {dict(cfg.items())}")
    return weights


def make_loss(cfg) -> Callable:
    """Builds a weighted sum of ``LOSSES`` and ``ESTIMATE_LOSSES`` from ``{name: weight}`` (a dict or a ConfigDict).

    Terms with weight 0 are left out, so an ablation can switch one off from the command line.
    ``cfg`` is checked by ``check_loss_config``.

    Returns:
      ``loss(outputs, targets) -> (total, terms)`` on dicts holding ``'image'`` (and what the
      estimate losses score): ``total`` the weighted sum, ``terms`` a dict of the unweighted value
      of each active term by name, for logging.
    """
    weights = check_loss_config(cfg)

    def term(name, outputs, targets):
        if name in LOSSES:
            return LOSSES[name](outputs["image"], targets["image"])
        fn, estimate, target = ESTIMATE_LOSSES[name]
        return fn(outputs[estimate], targets[target])

    def loss(outputs, targets):
        terms = {name: term(name, outputs, targets) for name in weights}
        total = sum(weight * terms[name] for name, weight in weights.items())
        return total, terms

    return loss


def estimates_scored(cfg) -> set[str]:
    """The model estimates that the loss config ``cfg`` scores (the model must make them)."""
    return {ESTIMATE_LOSSES[name][1] for name, weight in cfg.items() if weight and name in ESTIMATE_LOSSES}
