"""Batched blur of 1280x720 RGB with 31x31 kernels: jdeblur (jitted) against scipy's fftconvolve.

Run: python benchmarks/blur.py [--batch 4] [--repeats 7]

Both sides blur the same float32 batch of natural images, each image with its own 31x31 kernel,
with the zero boundary and 'same' output size: ``jdeblur.physics.operators.blur(x, k,
boundary='zero')`` (method 'auto', jitted, on the device) against
``scipy.signal.fftconvolve(image[..., c], kernel, mode='same')`` per image and channel. Prints
the largest difference, both median timings and, last, the speed ratio (target: >= 2x).
"""
import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np
import scipy.signal
from skimage import data, transform

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur.physics.operators import blur  # noqa: E402

_IMAGES = (data.astronaut, data.coffee, data.chelsea, data.rocket)


def make_batch(batch, rng):
    """``batch`` natural 720x1280 RGB images and one random 31x31 kernel each, float32."""
    images = [
        transform.resize(_IMAGES[i % len(_IMAGES)](), (720, 1280), order=1, anti_aliasing=False)
        for i in range(batch)
    ]
    kernels = rng.random((batch, 31, 31))
    kernels /= kernels.sum((1, 2), keepdims=True)
    return np.stack(images).astype(np.float32), kernels.astype(np.float32)


def median_seconds(fns, repeats):
    """Median wall time of each of ``fns`` after a warm-up call, waiting for JAX results.

    The functions are timed in turn within each repeat, so that a change of load on a shared
    machine weighs on both sides alike.
    """
    for fn in fns:
        jax.block_until_ready(fn())
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            fn_times.append(time.perf_counter() - start)
    return [statistics.median(fn_times) for fn_times in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    images, kernels = make_batch(args.batch, np.random.default_rng(0))
    blur_jit = jax.jit(lambda x, k: blur(x, k, boundary="zero"))
    images_device, kernels_device = jax.device_put(images), jax.device_put(kernels)

    def reference():
        return np.stack([
            np.stack([scipy.signal.fftconvolve(image[..., c], kernel, mode="same")
                      for c in range(image.shape[-1])], axis=-1)
            for image, kernel in zip(images, kernels)
        ])

    difference = np.abs(np.asarray(blur_jit(images_device, kernels_device)) - reference()).max()
    print(f"batch: {args.batch}x720x1280x3 float32, kernels {args.batch}x31x31, "
          f"device: {jax.devices()[0].device_kind}")
    print(f"largest difference: {difference:.2e}")

    ours_s, reference_s = median_seconds(
        [lambda: blur_jit(images_device, kernels_device), reference], args.repeats
    )
    print(f"jdeblur (jit):     {ours_s * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"scipy fftconvolve: {reference_s * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"ratio (scipy / jdeblur): {reference_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
