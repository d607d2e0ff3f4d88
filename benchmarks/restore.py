"""Wiener and Richardson-Lucy on 512x512 images: jdeblur (jitted) against scikit-image.

Run: python benchmarks/restore.py [--repeats 5] [--num-iter 30]

Both sides get the same float32 blurred images (``camera`` grayscale and ``astronaut`` RGB,
blurred by a 15x15 Gaussian, sigma 3, with noise 0.01) and the same kernel; scikit-image runs
``wiener(image, psf, balance=0.01)`` and ``richardson_lucy(image, psf, num_iter)`` once per
channel, jdeblur one batched call for all channels, both in their default conventions (which
agree). Prints, per case, the largest output difference, both median timings and the speed ratio
(target: >= 1x); the overall ratio (total scikit-image time / total jdeblur time) comes last.
"""
import argparse
import functools
import os
import statistics
import sys
import time

import jax
import numpy as np
import scipy.ndimage
import skimage.restoration
from skimage import data

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur.restore.fourier import wiener  # noqa: E402
from jdeblur.restore.richardson_lucy import richardson_lucy  # noqa: E402

BALANCE = 0.01


def gaussian_kernel(size, sigma):
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def make_inputs(rng, kernel):
    """Blurred, noisy HWC float32 images: 512x512x1 camera and 512x512x3 astronaut."""
    images = {"gray": data.camera()[..., None], "rgb": data.astronaut()}
    blurred = {}
    for name, image in images.items():
        image = image.astype(np.float64) / 255.0
        y = scipy.ndimage.convolve(image, kernel[..., None], mode="reflect")
        blurred[name] = np.clip(y + 0.01 * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
    return blurred


def median_seconds(fn, repeats):
    """Median wall time of ``fn()`` after one warm-up call, waiting for JAX results."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_channel(method, image, kernel, **kw):
    return np.stack([method(image[..., c], kernel, **kw) for c in range(image.shape[-1])], axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-iter", type=int, default=30)
    args = parser.parse_args()

    kernel = gaussian_kernel(15, 3.0)
    inputs = make_inputs(np.random.default_rng(0), kernel)
    ours = {
        "wiener": jax.jit(lambda y, k: wiener(y, k, BALANCE)),
        "richardson_lucy": jax.jit(lambda y, k: richardson_lucy(y, k, num_iter=args.num_iter)),
    }
    reference = {
        "wiener": lambda y: per_channel(skimage.restoration.wiener, y, kernel, balance=BALANCE),
        "richardson_lucy": lambda y: per_channel(
            skimage.restoration.richardson_lucy, y, kernel, num_iter=args.num_iter
        ),
    }
    print(f"15x15 Gaussian kernel, float32, RL with {args.num_iter} iterations, "
          f"device: {jax.devices()[0].device_kind}, medians of {args.repeats}")
    print(f"{'case':<22} {'max |diff|':>10} {'jdeblur ms':>11} {'skimage ms':>11} {'ratio':>7}")
    totals = [0.0, 0.0]
    for method in ("wiener", "richardson_lucy"):
        for name, image in inputs.items():
            image_device, kernel_device = jax.device_put(image), jax.device_put(kernel)
            restored = np.asarray(ours[method](image_device, kernel_device))
            difference = np.abs(restored - reference[method](image)).max()
            ours_s = median_seconds(functools.partial(ours[method], image_device, kernel_device), args.repeats)
            reference_s = median_seconds(functools.partial(reference[method], image), args.repeats)
            totals[0] += ours_s
            totals[1] += reference_s
            print(f"{method + ' ' + name:<22} {difference:10.2e} {ours_s * 1e3:11.1f} "
                  f"{reference_s * 1e3:11.1f} {reference_s / ours_s:6.2f}x")
    print(f"total: jdeblur {totals[0] * 1e3:.1f} ms, scikit-image {totals[1] * 1e3:.1f} ms")
    print(f"ratio (scikit-image / jdeblur): {totals[1] / totals[0]:.2f}x")


if __name__ == "__main__":
    main()
