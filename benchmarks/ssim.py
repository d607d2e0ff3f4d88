"""SSIM of a 1280x720 RGB pair: jdeblur (jitted) against scikit-image, in the pinned convention.

Run: python benchmarks/ssim.py [--repeats 7]

Both sides get the same float32 pair (a natural image with noise and blur); scikit-image runs
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)``. Prints both values, their difference, both median timings
(wall clock, and CPU time of this process, which a machine shared with other jobs disturbs
less) and, last, the speed ratio (target: >= 10x).
"""
import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np
import scipy.ndimage
from skimage import data, transform
from skimage.metrics import structural_similarity

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur import metrics  # noqa: E402


def make_pair(rng):
    """A 720x1280 RGB natural image and a blurred, noisy copy, float32 in [0, 1]."""
    sharp = transform.resize(data.astronaut(), (720, 1280), order=1, anti_aliasing=False)
    degraded = scipy.ndimage.gaussian_filter(sharp, sigma=(1.2, 1.2, 0)) + 0.02 * rng.standard_normal(sharp.shape)
    return sharp.astype(np.float32), np.clip(degraded, 0.0, 1.0).astype(np.float32)


def median_seconds(fn, repeats):
    """Median wall and CPU seconds of ``fn()`` after one warm-up call, waiting for JAX results."""
    jax.block_until_ready(fn())
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    sharp, degraded = make_pair(np.random.default_rng(0))
    ssim_jit = jax.jit(metrics.ssim)
    sharp_device, degraded_device = jax.device_put(sharp), jax.device_put(degraded)

    def reference():
        return structural_similarity(sharp, degraded, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1, channel_axis=-1)

    ours_value = float(ssim_jit(sharp_device, degraded_device))
    reference_value = float(reference())
    print(f"image: 720x1280x3 float32, device: {jax.devices()[0].device_kind}")
    print(f"jdeblur SSIM:      {ours_value:.8f}")
    print(f"scikit-image SSIM: {reference_value:.8f}")
    print(f"difference:        {ours_value - reference_value:+.2e}")

    ours_wall, ours_cpu = median_seconds(lambda: ssim_jit(sharp_device, degraded_device), args.repeats)
    reference_wall, reference_cpu = median_seconds(reference, args.repeats)
    print(f"medians of {args.repeats} runs    wall ms   cpu ms")
    print(f"jdeblur (jit):     {ours_wall * 1e3:8.2f} {ours_cpu * 1e3:8.2f}")
    print(f"scikit-image:      {reference_wall * 1e3:8.2f} {reference_cpu * 1e3:8.2f}")
    print(f"ratio (scikit-image / jdeblur): {reference_wall / ours_wall:.1f}x wall "
          f"({reference_cpu / ours_cpu:.1f}x cpu)")


if __name__ == "__main__":
    main()
