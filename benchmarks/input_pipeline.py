"""Input pipeline throughput: augmented patches per second from the embedded default dataset.

Run: python benchmarks/input_pipeline.py [--repeats 5] [--batches 10] [--data_dir DIR]

Builds ``skimage_images`` (timed, into a temporary directory unless --data_dir is given), then
for patch sizes 64 and 256 (plus a margin of 15 pixels on each side, the margin of the default
31x31 blur kernels) and a global batch of 16, times ``make_train_loader`` with every augmentation
on (crops, flips, rotations, rescaling in [0.75, 1.25], brightness and colour jitter) across
worker settings: threads, the in-memory cache off, and worker processes. Each setting is warmed
up (workers started, cache filled), then timed as the median of ``--repeats`` runs of
``--batches`` batches. Prints patches/s per setting and, last, the ratio of the best setting to
the baseline (one thread, no cache). The training step's consumption is the other side of the
comparison, added by benchmarks/README.md once measured on an accelerator.
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur.data.datasets import load_dataset  # noqa: E402
from jdeblur.data.pipeline import default_data_config, make_train_loader  # noqa: E402

GLOBAL_BATCH = 16
MARGIN = 15
SETTINGS = {  # name: (read_threads, worker_processes, cache_mb)
    "1 thread, no cache (baseline)": (0, 0, 0),
    "2 threads, no cache": (2, 0, 0),
    "1 thread, cache": (0, 0, 512),
    "2 threads, cache": (2, 0, 512),
    "4 threads, cache": (4, 0, 512),
    "2 processes x 1 thread, cache": (1, 2, 512),
}


def patches_per_second(data_dir: str, patch_size: int, threads: int, processes: int, cache_mb: int,
                       batches: int, repeats: int) -> float:
    """Median patches/s of the train loader in one setting, after a warm-up."""
    cfg = default_data_config()
    cfg.data_dir, cfg.patch_size = data_dir, patch_size
    cfg.read_threads, cfg.worker_processes, cfg.cache_mb = threads, processes, cache_mb
    cfg.augment.scale_range, cfg.augment.brightness, cfg.augment.color = (0.75, 1.25), 0.1, 0.05
    loader = make_train_loader(cfg, seed=0, global_batch=GLOBAL_BATCH, margin=MARGIN,
                               process_index=0, process_count=1)
    for _ in range(2 * batches):  # warm-up: start workers, fill the caches (11 train images)
        next(loader)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        times.append(time.perf_counter() - start)
    return batches * GLOBAL_BATCH / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--data_dir", default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or scratch
        start = time.perf_counter()
        load_dataset("skimage_images", split="train", data_dir=data_dir)
        print(f"skimage_images ready in {time.perf_counter() - start:.2f} s (built unless --data_dir held it)")
        print(f"patches/s, global batch {GLOBAL_BATCH}, margin {MARGIN}, all augmentations, {os.cpu_count()} CPUs")
        results = {}
        for patch_size in (64, 256):
            for name, setting in SETTINGS.items():
                rate = patches_per_second(data_dir, patch_size, *setting, args.batches, args.repeats)
                results[(patch_size, name)] = rate
                print(f"  patch {patch_size:3d} (+2x{MARGIN}): {name:32s} {rate:8.0f} patches/s", flush=True)
        for patch_size in (64, 256):
            baseline = results[(patch_size, next(iter(SETTINGS)))]
            best_name = max(SETTINGS, key=lambda n: results[(patch_size, n)])
            print(f"patch {patch_size}: best ({best_name}) / baseline = "
                  f"{results[(patch_size, best_name)] / baseline:.1f}x")


if __name__ == "__main__":
    main()
