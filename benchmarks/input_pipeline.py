"""Input pipeline throughput: augmented patches per second from the embedded default dataset.

Run: python benchmarks/input_pipeline.py [--repeats 5] [--batches 10] [--data_dir DIR]
                                         [--quickstart-only]

Builds ``skimage_images`` (timed, into a temporary directory unless --data_dir is given), then
for patch sizes 64 and 256 (plus a margin of 15 pixels on each side, the margin of the default
31x31 blur kernels) and a global batch of 16, times ``make_train_loader`` with every augmentation
on (crops, flips, rotations, rescaling in [0.75, 1.25], brightness and colour jitter) across
worker settings: threads, the in-memory cache off, and worker processes. Each setting is warmed
up (workers started, cache filled), then timed as the median of ``--repeats`` runs of
``--batches`` batches. Prints patches/s per setting and, last, the ratio of the best setting to
the baseline (one thread, no cache).

Supply against consumption: the U-Net experiment's own loader (its data config: 64x64 patches plus the
9-px margin of its 19x19 blur, batch 16, its augmentations and worker settings) against its train
step, built as ``benchmarks/train_step.py`` builds it (degradation included), timed in
interleaved rounds in the same process, before the settings above (alone with
``--quickstart-only``); prints loader patches/s / step images/s (the issue's target: at least
3x). The two are timed one after the other, not concurrently as in training, where the trainer
logs the time it waits for data (``data_wait_fraction`` in ``metrics.jsonl``).
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from train_step import load_case, random_batch, step_case  # noqa: E402  (benchmarks/train_step.py)

from jdeblur.data.datasets import load_dataset  # noqa: E402
from jdeblur.data.pipeline import default_data_config, make_train_loader  # noqa: E402
from jdeblur.train import loop, parallel  # noqa: E402

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
    warm_up(loader, batches)
    return batches * GLOBAL_BATCH / statistics.median([seconds_for(loader, batches) for _ in range(repeats)])


def warm_up(loader, batches: int) -> None:
    for _ in range(2 * batches):  # start workers, fill the caches (11 train images)
        next(loader)


def seconds_for(loader, batches: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return time.perf_counter() - start


def quickstart_supply_and_consumption(data_dir: str, batches: int, repeats: int) -> tuple[float, float]:
    """The quickstart loader's patches/s and its train step's images/s, medians of interleaved rounds."""
    config = load_case("quickstart")
    data_cfg = config.data.copy_and_resolve_references()
    data_cfg.data_dir = data_dir
    global_batch = config.train.global_batch
    loader = make_train_loader(data_cfg, seed=0, global_batch=global_batch, margin=loop.input_margin(config),
                               process_index=0, process_count=1)
    batch = random_batch(config, np.random.default_rng(0))
    step = step_case("quickstart", config, parallel.make_mesh(1), batch)
    warm_up(loader, batches)
    step.calibrate(1.0)
    loader_s = []
    for _ in range(repeats):
        # The loader keeps making batches in the background while the step runs: drain what it
        # made ahead, so that the timed batches are made at its steady rate.
        seconds_for(loader, batches)
        loader_s.append(seconds_for(loader, batches) / batches)
        step.measure()
    return global_batch / statistics.median(loader_s), global_batch / step.median_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--data_dir", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--quickstart-only", action="store_true",
                        help="only the quickstart loader against its train step")
    args = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or scratch
        start = time.perf_counter()
        load_dataset("skimage_images", split="train", data_dir=data_dir)
        print(f"skimage_images ready in {time.perf_counter() - start:.2f} s "
              f"(built unless --data_dir held it); {os.cpu_count()} CPUs")
        supply, consumption = quickstart_supply_and_consumption(data_dir, args.batches, args.repeats)
        print(f"quickstart loader: {supply:.0f} patches/s; quickstart train step: {consumption:.1f} images/s "
              f"(median of {args.repeats} interleaved rounds)")
        print(f"quickstart supply / consumption = {supply / consumption:.1f}x (target >= 3x)", flush=True)
        if args.quickstart_only:
            return
        print(f"patches/s, global batch {GLOBAL_BATCH}, margin {MARGIN}, all augmentations")
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
