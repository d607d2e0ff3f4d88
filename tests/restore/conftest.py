"""Shared inputs for the deconvolution tests: a natural image blurred independently of jdeblur."""
import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from tests.restore.references import gaussian_kernel


@pytest.fixture(scope="session")
def blurred_camera():
    """(sharp, blurred, kernel): a 96x96 crop of ``camera``, HW1 in [0, 1], reflect-blurred, noise 0.005.

    The crop is not periodic, so a circular model rings at its borders. The noise is drawn once
    with a fixed seed: the PSNR gains asserted below are properties of the methods, not of luck.
    """
    sharp = skimage.data.camera()[80:176, 200:296].astype(np.float64) / 255.0
    kernel = gaussian_kernel(9, 1.6)
    blurred = scipy.ndimage.convolve(sharp, kernel, mode="reflect")
    blurred += 0.005 * np.random.default_rng(7).standard_normal(blurred.shape)
    return (sharp[..., None].astype(np.float32), blurred[..., None].astype(np.float32),
            kernel.astype(np.float32))
