"""References built independently of jdeblur for the deconvolution tests: a Gaussian kernel and PSNR."""
import numpy as np


def gaussian_kernel(size, sigma):
    """Normalised isotropic Gaussian (float64), built here so the tests do not trust jdeblur's."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def psnr(a, b):
    """PSNR in dB of images in [0, 1], in float64 (not jdeblur's metric: the tests check jdeblur's methods)."""
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
