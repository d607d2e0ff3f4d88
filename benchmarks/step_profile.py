"""Where a train step's time goes: its XLA operations ranked by time, from a profiler trace.

    python benchmarks/step_profile.py [--case quickstart] [--steps 3] [--top 15] [--conv-transpose]

Builds the step of a ``benchmarks/train_step.py`` case (the trainer's step, compiled once), runs
``--steps`` steps under ``jax.profiler.trace`` and reads the Perfetto trace it writes: XLA:CPU
records one event per executed operation (thunk). Prints the ``--top`` operations by time per step,
each with its share of the step, its shape and, where XLA kept it, the source of the HLO
instruction (``op_name`` metadata, e.g. ``transpose(jvp(UNet))/UNet._down/down1/conv_general_dilated``
for a gradient); then the time per kind of operation (``convolution-base-dilated`` is XLA:CPU's
generic convolution loop, not a library kernel).
"""
import argparse
import collections
import gzip
import json
import pathlib
import re
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_step import CASES, flax_conv_transpose_model, load_case, random_batch, step_case  # noqa: E402

from jdeblur import host_memory  # noqa: E402
from jdeblur.train import parallel  # noqa: E402


def trace_events(run, steps: int) -> list[dict]:
    """Complete ('X') events of ``steps`` calls of ``run`` under the profiler."""
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for _ in range(steps):
                out = run()
            jax.block_until_ready(out)
        trace = json.loads(gzip.open(next(pathlib.Path(folder).rglob("perfetto_trace.json.gz"))).read())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return [e for e in events if e.get("ph") == "X"]


def instruction_sources(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> a short description: its shape and the op_name it came from."""
    sources = {}
    for line in hlo_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%?([\w.-]+) = (\S+) ", line)
        if match:
            origin = re.search(r'op_name="([^"]+)"', line)
            sources[match.group(1)] = f"{match.group(2)} {origin.group(1) if origin else ''}".strip()
    return sources


def main():
    # The trainer's allocator setting (train_step.py does the same): without it, XLA's temporaries
    # are faulted in afresh at every step and the profile shows page faults, not operations.
    host_memory.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="quickstart", choices=list(CASES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--conv-transpose", action="store_true",
                        help="the U-Net with Flax's nn.ConvTranspose up-convolutions (train_step.py)")
    args = parser.parse_args()

    config = load_case(args.case)
    model = flax_conv_transpose_model(config) if args.conv_transpose else None
    batch = random_batch(config, np.random.default_rng(0))
    timed = step_case(args.case, config, parallel.make_mesh(1), batch, model=model)
    for _ in range(2):
        jax.block_until_ready(timed.call())
    events = trace_events(timed.call, args.steps)
    sources = instruction_sources(timed.compiled.as_text())
    per_op = collections.Counter()
    for e in events:
        if e["name"] in sources:
            per_op[e["name"]] += e["dur"] / 1e3 / args.steps  # microseconds -> ms per step
    step_ms = sum(e["dur"] for e in events if e["name"] == "ThunkExecutor::Execute") / 1e3 / args.steps
    print(f"{args.case}{' (nn.ConvTranspose)' if model else ''}: {len(per_op)} operations timed, "
          f"{sum(per_op.values()):.0f} ms of operations per step; ThunkExecutor::Execute {step_ms:.0f} ms")
    for name, ms in per_op.most_common(args.top):
        print(f"{ms:8.1f} ms {ms / step_ms:6.1%}  {name:34s} {sources[name][:150]}")
    kinds = collections.Counter()
    for name, ms in per_op.items():
        kinds[re.sub(r"\.\d+$", "", name)] += ms
    print("by kind (ynn_fusion: convolutions and matrix products in YNNPACK; convolution-base-dilated: "
          "XLA:CPU's generic convolution loop; transpose_copy_fusion: layout changes):")
    for kind, ms in kinds.most_common(8):
        print(f"{ms:8.1f} ms {ms / step_ms:6.1%}  {kind}")


if __name__ == "__main__":
    main()
