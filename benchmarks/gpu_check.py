"""Accelerator check: U-Net and NAFNet width 32 train steps at float32 and bfloat16 on every device found.

    python benchmarks/gpu_check.py [--budget-s 420] [--steps 10] [--max-devices N] [--models ...] [--dtypes ...]

For the GoPro recipes (``experiments/gopro_unet.py``, ``experiments/gopro_nafnet.py:width32``:
256x256 pairs; ``--per-device`` pairs per device, default 4 as NAFNet's 8-GPU recipe has), it
prints per model and compute dtype:

- images/s of the trainer's step (``jdeblur.train.loop.build_train_step``: shard_map over a 1-D
  mesh, state donated, gradients averaged with pmean) on one device;
- the fraction of the bf16 matmul peak that the step's FLOPs (XLA's cost analysis of the compiled
  step) reach; the peak is measured here first, with an 8192x8192 bf16 matrix product;
- device memory: XLA's own account of the compiled step (arguments + outputs + temporaries) and,
  where the backend reports it (GPU, TPU), ``device.memory_stats()['peak_bytes_in_use']``: the
  process's peak so far, so a reading also covers the cases before it;
- the scaling to 2, 4, ... and all devices (the last dtype; the same per-device batch, so the global
  batch grows): images/s and the efficiency against n times the one-device figure;
- for NAFNet, also the other ``kernels`` setting than the one 'auto' picks here (on a GPU: the CPU
  forms, shifted depthwise convolutions, matrix-product 1x1 convolutions and scanned blocks, against
  XLA's convolutions): the figure that decides what 'auto' should pick on accelerators
  (``jdeblur/models/nafnet.py``).

Each case is compiled (time printed), run twice, then timed over ``--steps`` steps. A case that
would start after ``--budget-s`` seconds is skipped and reported as such, so a session with a few
device-minutes gets the most important figures first (one device, then scaling). Every number is a
measurement of this run; nothing is estimated. ``--tiny`` shrinks everything to the experiments'
``runlocal`` models, 32x32 patches and a 256x256 matrix product, compiled without XLA's backend
optimisations: the CPU smoke test of the script (tests/test_gpu_check.py runs it on simulated CPU
devices); its figures say nothing about any machine.
"""
import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import build_step, flops_of, random_batch  # noqa: E402

from jdeblur import config as cfglib  # noqa: E402
from jdeblur.models.nafnet import resolve_kernels  # noqa: E402
from jdeblur.models.registry import build_model  # noqa: E402
from jdeblur.train import parallel  # noqa: E402

MODELS = {"unet": "gopro_unet", "nafnet-width32": "gopro_nafnet:width32"}
TINY_MODELS = {"unet": "gopro_unet:runlocal", "nafnet-width32": "gopro_nafnet:runlocal"}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def matmul_peak(side: int, repeats: int = 10) -> float:
    """FLOP/s of a side x side bfloat16 matrix product on the default device (median of ``repeats``)."""
    a = jax.random.normal(jax.random.key(0), (side, side), jnp.bfloat16)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(a, a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        times.append(time.perf_counter() - start)
    return 2 * side**3 / float(np.median(times))


def device_scaling(num_devices: int, max_devices: int | None) -> list[int]:
    """1, 2, 4, ... and the total: the mesh sizes to time."""
    total = min(num_devices, max_devices or num_devices)
    sizes = [n for n in (2**k for k in range(total.bit_length())) if n <= total]
    return sorted(set(sizes + [total]))


def peak_memory(devices) -> int | None:
    """The largest ``peak_bytes_in_use`` over ``devices``, or None where the backend does not report it."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in devices]
    return max(peaks) if all(p is not None for p in peaks) else None


def other_kernels() -> str:
    """The NAFNet ``kernels`` setting that 'auto' does not pick on this backend."""
    return "xla" if resolve_kernels("auto") == "cpu" else "cpu"


def measure_case(spec: str, *, dtype, kernels: str | None, devices: int, per_device: int, patch: int | None,
                 steps: int, quick_compile: bool = False) -> dict:
    """Compiles and times one train step; returns its figures.

    ``quick_compile`` turns XLA's backend optimisations off (the smoke test: compiles several times
    faster, runs slower, so its figures are not the machine's).
    """
    overrides = [f"train.global_batch={per_device * devices}"] + ([f"data.patch_size={patch}"] if patch else [])
    config = cfglib.load_config(spec, overrides)
    model = build_model(config.model).clone(dtype=dtype)
    if kernels is not None:
        model = model.clone(kernels=kernels)
    mesh = parallel.make_mesh(devices)
    train_step, state = build_step(config, mesh, model=model)
    batch = parallel.place_batch(random_batch(config, np.random.default_rng(0)), mesh, config.train.parallel)
    key = jax.random.key(1)
    start = time.perf_counter()
    options = {"xla_backend_optimization_level": 0} if quick_compile else None
    compiled = train_step.lower(state, batch, key).compile(compiler_options=options)
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    for _ in range(2):
        state, stats = compiled(state, batch, key)
    jax.block_until_ready(stats)
    start = time.perf_counter()
    for _ in range(steps):
        state, stats = compiled(state, batch, key)
    jax.block_until_ready(stats)
    seconds = (time.perf_counter() - start) / steps
    xla_bytes = None
    if memory is not None:
        xla_bytes = (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
                     - memory.alias_size_in_bytes)
    return {"compile_s": compile_s, "step_s": seconds, "images": config.train.global_batch,
            "images_per_s": config.train.global_batch / seconds, "flops": flops_of(compiled),
            "xla_bytes": xla_bytes, "peak_bytes": peak_memory(mesh.devices.flat),
            "loss_finite": bool(np.isfinite(float(stats["loss"])))}


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no case after this many seconds (the run reports what it skipped)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case")
    parser.add_argument("--per-device", type=int, default=4, help="training pairs per device")
    parser.add_argument("--max-devices", type=int, default=None, help="largest mesh to time (default: all)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--tiny", action="store_true",
                        help="runlocal models, 32x32 patches, unoptimised compiles: the CPU smoke test")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    models = {name: (TINY_MODELS if args.tiny else MODELS)[name] for name in args.models}
    patch = 32 if args.tiny else None
    devices = jax.devices()
    print(f"{len(devices)} x {devices[0].device_kind} ({devices[0].platform}), jax {jax.__version__}", flush=True)
    peak = matmul_peak(256 if args.tiny else 8192)
    print(f"bf16 matmul peak (one device): {peak / 1e12:.3f} TFLOP/s", flush=True)

    last_dtype = args.dtypes[-1]
    plan = [(name, dtype_name, None, 1) for name in models for dtype_name in args.dtypes]
    if "nafnet-width32" in models:
        plan.append(("nafnet-width32", last_dtype, other_kernels(), 1))
    plan += [(name, last_dtype, None, n) for n in device_scaling(len(devices), args.max_devices)[1:]
             for name in models]
    results = []
    for name, dtype_name, kernels, n in plan:
        label = f"{name} {dtype_name}{f' kernels={kernels}' if kernels else ''} on {n} device(s)"
        if time.perf_counter() - began > args.budget_s:
            print(f"skipped (past --budget-s {args.budget_s:.0f} s): {label}", flush=True)
            continue
        figures = measure_case(models[name], dtype=DTYPES[dtype_name], kernels=kernels, devices=n,
                               per_device=args.per_device, patch=patch, steps=args.steps, quick_compile=args.tiny)
        figures.update(model=name, dtype=dtype_name, kernels=kernels or "auto", devices=n)
        figures["peak_fraction"] = figures["flops"] / figures["step_s"] / peak  # per-device program's FLOPs
        results.append(figures)
        print(f"{label}: compiled in {figures['compile_s']:.1f} s, {figures['step_s'] * 1e3:.1f} ms/step, "
              f"{figures['images_per_s']:.1f} images/s", flush=True)

    print("\n| model | dtype | kernels | devices | images/step | ms/step | images/s | of bf16 matmul peak "
          "| memory (XLA) | peak memory | compile |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['dtype']} | {r['kernels']} | {r['devices']} | {r['images']} | "
              f"{r['step_s'] * 1e3:.1f} | {r['images_per_s']:.1f} | {r['peak_fraction']:.1%} | "
              f"{_gib(r['xla_bytes'])} | {_gib(r['peak_bytes'])} | {r['compile_s']:.1f} s |")
    single = {(r["model"], r["dtype"]): r for r in results if r["devices"] == 1 and r["kernels"] == "auto"}
    for r in results:
        one = single.get((r["model"], r["dtype"]))
        if r["devices"] > 1 and one:
            r["scaling_efficiency"] = r["images_per_s"] / (r["devices"] * one["images_per_s"])
            print(f"scaling {r['model']} {r['dtype']}: {r['devices']} devices {r['images_per_s']:.1f} images/s = "
                  f"{r['scaling_efficiency']:.0%} of {r['devices']} x one device")
    other = [r for r in results if r["kernels"] != "auto"]
    reference = single.get(("nafnet-width32", last_dtype))
    if other and reference:
        print(f"NAFNet {last_dtype}, kernels={other[0]['kernels']} against 'auto' ({resolve_kernels('auto')}): "
              f"{reference['step_s'] / other[0]['step_s']:.2f}x the speed (above 1: 'auto' should pick "
              f"{other[0]['kernels']} on this platform, jdeblur/models/nafnet.py)")
    print(f"total {time.perf_counter() - began:.0f} s")
    return results


if __name__ == "__main__":
    main()
