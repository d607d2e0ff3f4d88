"""Tests of jdeblur.losses against float64 numpy formulas written here, independently."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.test_util import check_grads
from skimage.metrics import structural_similarity

from jdeblur import losses, metrics

TWO_SCALES = (0.4, 0.6)  # MS-SSIM on small patches: the code path of five scales, cheaper


def numpy_losses(pred, target):
    """Every loss of ``losses.LOSSES`` but MS-SSIM, for NHWC float64 arrays."""
    diff = pred - target
    per_image_mse = np.mean(diff**2, axis=(1, 2, 3))
    ssims = [structural_similarity(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=1, channel_axis=-1) for p, t in zip(pred, target)]
    half_spectrum = np.fft.rfft2(diff, axes=(1, 2))
    full_spectrum = np.fft.fft2(diff, axes=(1, 2))
    # MIMO-UNet: torch L1Loss over a (..., 2) tensor of real and imaginary parts.
    fft_l1 = lambda f: np.mean(np.abs(np.stack([f.real, f.imag], axis=-1)))  # noqa: E731
    return {
        "l1": np.mean(np.abs(diff)),
        "mse": np.mean(diff**2),
        "charbonnier": np.mean(np.sqrt(diff**2 + 1e-3**2)),
        "psnr": np.mean(10 / np.log(10) * np.log(per_image_mse + 1e-8)),  # NAFNet's PSNRLoss
        "ssim": 1 - np.mean(ssims),
        "fft_l1": fft_l1(half_spectrum),
        "fft_l1_full": fft_l1(full_spectrum),
    }


def test_losses_match_numpy(rng, x64):
    target = rng.random((2, 16, 20, 3))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    expected = numpy_losses(pred, target)
    ours = {name: jax.jit(fn)(pred, target) for name, fn in losses.LOSSES.items() if name != "ms_ssim"}
    ours["fft_l1_full"] = jax.jit(functools.partial(losses.fft_l1_loss, onesided=False))(pred, target)
    assert set(ours) == set(expected)
    for name, value in ours.items():
        assert value.shape == () and value.dtype == jnp.float64, name
        np.testing.assert_allclose(value, expected[name], rtol=1e-10, err_msg=name)
    # PSNR loss is minus PSNR, up to its epsilon.
    np.testing.assert_allclose(ours["psnr"], -np.mean(metrics.psnr(pred, target)), rtol=1e-6)
    assert ours["fft_l1_full"] != ours["fft_l1"]


def test_ms_ssim_loss_is_one_minus_batch_mean(rng):
    target = jnp.asarray(rng.random((2, 24, 26, 3)), jnp.float32)
    pred = target + 0.1 * jnp.asarray(rng.standard_normal(target.shape), jnp.float32)
    loss = losses.ms_ssim_loss(pred, target, weights=TWO_SCALES)
    scores = metrics.ms_ssim(pred, target, weights=TWO_SCALES)
    assert scores[0] != scores[1]
    np.testing.assert_allclose(loss, 1 - (scores[0] + scores[1]) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="at least 161x161"):
        losses.ms_ssim_loss(pred, target)


def all_losses(pred, target):
    """Every loss stacked, MS-SSIM on two scales: one compilation checks them all."""
    fns = dict(losses.LOSSES, ms_ssim=functools.partial(losses.ms_ssim_loss, weights=TWO_SCALES))
    return jnp.stack([fn(pred, target) for fn in fns.values()])


def test_gradients_finite_when_pred_equals_target(rng):
    image = jnp.asarray(rng.random((2, 24, 22, 3)), jnp.float32)
    values = jax.jit(all_losses)(image, image)
    np.testing.assert_allclose(values, [0, 0, 1e-3, -80, 0, 0, 0], atol=1e-5)
    # A NaN or Inf in the gradient of any term would show in the gradient of the sum.
    grad = jax.jit(jax.grad(lambda p: all_losses(p, image).sum()))(image)
    assert np.all(np.isfinite(grad))


def test_smooth_losses_gradients_match_finite_differences(rng, x64):
    target = rng.random((2, 12, 14, 3))
    pred = target + 0.1 * rng.standard_normal(target.shape)
    # SSIM's gradients are checked in test_metrics.py.
    smooth = lambda p: (losses.charbonnier_loss(p, target) + losses.psnr_loss(p, target) / 100  # noqa: E731
                        + losses.mse_loss(p, target))
    check_grads(jax.jit(smooth), (pred,), order=1, modes=("rev",))


def test_losses_vmap_over_single_images(rng):
    target = jnp.asarray(rng.random((2, 24, 22, 3)), jnp.float32)
    pred = target + 0.05 * jnp.asarray(rng.standard_normal(target.shape), jnp.float32)
    per_image = jax.jit(jax.vmap(all_losses))(pred, target)
    np.testing.assert_allclose(per_image.mean(axis=0), jax.jit(all_losses)(pred, target), rtol=1e-5, atol=1e-6)


def test_make_loss_weighted_sum(rng):
    target = jnp.asarray(rng.random((2, 24, 22, 3)), jnp.float32)
    pred = target + 0.05 * jnp.asarray(rng.standard_normal(target.shape), jnp.float32)
    cfg = {"l1": 1.0, "fft_l1": 0.1, "ssim": 0.5, "mse": 0.0}
    total, terms = jax.jit(losses.make_loss(cfg))({"image": pred}, {"image": target})
    assert set(terms) == {"l1", "fft_l1", "ssim"}  # zero weight: left out
    for name, value in terms.items():
        np.testing.assert_allclose(value, jax.jit(losses.LOSSES[name])(pred, target), rtol=1e-6)
    np.testing.assert_allclose(total, terms["l1"] + 0.1 * terms["fft_l1"] + 0.5 * terms["ssim"], rtol=1e-6)
    config_dict_total, _ = jax.jit(losses.make_loss(ml_collections.ConfigDict(cfg)))({"image": pred}, {"image": target})
    np.testing.assert_allclose(config_dict_total, total, rtol=1e-6)


def test_make_loss_accepts_every_name():
    loss = losses.make_loss({name: 1.0 for name in {**losses.LOSSES, **losses.ESTIMATE_LOSSES}})
    image = jnp.zeros((1, 161, 161, 1))
    outputs = {"image": image, "kernel": jnp.zeros((1, 5, 5)), "sharp_estimate": image}
    _, terms = jax.eval_shape(loss, outputs, {"image": image, "kernel": jnp.zeros((1, 7, 7))})
    assert set(terms) == set(losses.LOSSES) | set(losses.ESTIMATE_LOSSES)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"l1": 1.0, "perceptual": 0.1}, r"unknown loss 'perceptual'; valid names are \['charbonnier', 'fft_l1'"),
        ({"l1": -1.0}, r"config.loss.l1: expected a finite value >= 0"),
        ({"l1": float("nan")}, r"config.loss.l1: expected a finite value"),
        ({"l1": 0.0}, "at least one image loss with a positive weight"),
        ({}, "at least one image loss with a positive weight"),
        ({"kernel_l1": 1.0}, "at least one image loss with a positive weight"),
    ],
)
def test_make_loss_bad_config_raises(cfg, match):
    with pytest.raises(ValueError, match=match):
        losses.make_loss(cfg)


def test_kernel_l1_is_the_l1_distance_of_centred_kernels(rng):
    pred = rng.random((2, 5, 5))
    target = rng.random((2, 7, 7))
    # The 5x5 kernel's centre (2, 2) lands on the 7x7 one's (3, 3): one pixel of border each side.
    padded = np.zeros((2, 7, 7))
    padded[:, 1:6, 1:6] = pred
    want = np.abs(padded - target).sum(axis=(1, 2)).mean()
    np.testing.assert_allclose(losses.kernel_l1_loss(jnp.asarray(pred), jnp.asarray(target)), want, rtol=1e-6)
    even = rng.random((1, 4, 4))  # centre (2, 2): one row/column more before it than after
    padded = np.zeros((1, 7, 7))
    padded[:, 1:5, 1:5] = even
    np.testing.assert_allclose(losses.kernel_l1_loss(jnp.asarray(even), jnp.asarray(target[:1])),
                               np.abs(padded - target[:1]).sum(), rtol=1e-6)


def test_bad_inputs_raise():
    image = np.zeros((2, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="target: expected the shape of pred"):
        losses.l1_loss(image, image[:, :8])
    with pytest.raises(ValueError, match="pred: expected HWC or NHWC"):
        losses.fft_l1_loss(image[0, ..., 0], image[0, ..., 0])
