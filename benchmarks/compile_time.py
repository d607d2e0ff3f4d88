"""Compile time of a NAFNet training step, per way of running its blocks: wall and CPU seconds.

    python benchmarks/compile_time.py [--case nafnet-width32-128] [--rounds 3] [--variants cpu unrolled xla]
    python benchmarks/compile_time.py --tiny --rounds 1   # the smoke test: a tiny NAFNet, XLA at -O0

Builds the trainer's step for a ``benchmarks/train_step.py`` case as the trainer does and times its
tracing and lowering (``lower``) and XLA's compilation (``compile``) separately, with the persistent
compilation cache off, so every round compiles from scratch. Variants of the model (same parameters,
same function):
- ``cpu``: what ``kernels='auto'`` runs on a CPU (shifted depthwise, matrix-product 1x1
  convolutions, each run of identical blocks one ``lax.scan``: the trainer's ``for_training()`` module);
- ``unrolled``: the same kernels with every block unrolled (jdeblur's NAFNet before the scan);
- ``xla``: XLA's convolutions, unrolled (before any CPU form).

The variants are compiled in interleaved rounds (the order rotating), so the machine's load hits
them alike; medians. CPU seconds (this process's, all threads) are the figure to read on a shared
machine: wall time stretches with the load, CPU time much less (not at all is too much to hope:
at load 3-5 on 2 cores, two rounds of one variant were up to 19% apart). CPU seconds above the
wall seconds mean XLA compiled on more than one thread. The load average is printed.
"""
import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import CASES, build_step, random_batch  # noqa: E402

from jdeblur import config as cfglib  # noqa: E402
from jdeblur.models.nafnet import NAFNet  # noqa: E402
from jdeblur.models.registry import build_model  # noqa: E402
from jdeblur.train import parallel  # noqa: E402

VARIANTS = ("cpu", "unrolled", "xla")
# --tiny: runlocal's width-8 NAFNet on 32x32 patches cut to one level of two encoder blocks, so
# that the 'cpu' variant has a run of identical blocks to scan.
TINY_CASE = ("gopro_nafnet:runlocal", ["model.kwargs.enc_blk_nums=(2,)", "model.kwargs.dec_blk_nums=(1,)"])


class UnrolledNAFNet(NAFNet):
    """jdeblur's NAFNet with every block applied in turn, whatever the kernels and ``scan_blocks`` (no ``lax.scan``)."""

    def _stage(self, x, count: int, stride: int, name: str):
        for block in self._blocks(count, stride, name):
            x = block(x)
        return x


def variant_model(config, variant: str):
    model = build_model(config.model)
    if variant == "xla":
        return model.clone(kernels="xla")
    model = model.clone(kernels="cpu", scan_blocks=True)  # the trainer's module (for_training)
    if variant == "unrolled":
        fields = {f: getattr(model, f) for f in model.__dataclass_fields__ if f not in ("parent", "name")}
        return UnrolledNAFNet(**fields)
    return model


def timed(fn):
    """(result, wall seconds, this process's CPU seconds) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def compile_once(config, mesh, batch, variant: str, *, compiler_options=None) -> dict:
    train_step, state = build_step(config, mesh, model=variant_model(config, variant))
    placed = parallel.place_batch(batch, mesh, config.train.parallel)
    lowered, lower_wall, lower_cpu = timed(lambda: train_step.lower(state, placed, jax.random.key(1)))
    _, compile_wall, compile_cpu = timed(lambda: lowered.compile(compiler_options))
    return dict(lower_wall=lower_wall, lower_cpu=lower_cpu, compile_wall=compile_wall, compile_cpu=compile_cpu)


def main(argv=None) -> dict:
    """Runs the rounds, prints each and the table; returns the medians per variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="nafnet-width32-128", choices=[c for c in CASES if c.startswith("nafnet")])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians over them")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--tiny", action="store_true",
                        help="the smoke test: a tiny NAFNet instead of --case, XLA's backend optimisations off "
                             "(compiles several times faster; its figures say nothing about the real case)")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)

    spec, overrides = TINY_CASE if args.tiny else CASES[args.case]
    config = cfglib.load_config(spec, overrides)
    mesh = parallel.make_mesh(1)
    batch = random_batch(config, np.random.default_rng(0))
    options = {"xla_backend_optimization_level": 0} if args.tiny else None
    results = {v: [] for v in args.variants}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = args.variants[r % len(args.variants):] + args.variants[:r % len(args.variants)]
        for variant in order:
            results[variant].append(compile_once(config, mesh, batch, variant, compiler_options=options))
            last = results[variant][-1]
            print(f"round {r + 1}: {variant}: lower {last['lower_wall']:.1f} s, compile {last['compile_wall']:.1f} s "
                  f"wall ({last['compile_cpu']:.1f} s CPU); load {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()

    print(f"\n{spec} ({' '.join(overrides)}), jax {jax.__version__}, persistent cache off, "
          f"medians of {args.rounds} interleaved rounds; load average (1/5/15 min) before "
          f"{'/'.join(f'{v:.2f}' for v in load_before)}, after {'/'.join(f'{v:.2f}' for v in load_after)}")
    print("\n| variant | trace + lower, wall | trace + lower, CPU | compile, wall | compile, CPU |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for variant, runs in results.items():
        medians[variant] = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        m = medians[variant]
        print(f"| {variant} | {m['lower_wall']:.1f} s | {m['lower_cpu']:.1f} s | {m['compile_wall']:.1f} s | "
              f"{m['compile_cpu']:.1f} s |")
    total = {v: m["lower_cpu"] + m["compile_cpu"] for v, m in medians.items()}
    for other in (v for v in total if v != "cpu" and "cpu" in total):
        print(f"trace, lower and compile, CPU: {other} {total[other]:.1f} s, cpu (scan) {total['cpu']:.1f} s "
              f"({total[other] / total['cpu']:.2f}x)")
    return medians


if __name__ == "__main__":
    main()
