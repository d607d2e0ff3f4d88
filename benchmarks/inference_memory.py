"""Full-image deblurring: time and peak memory per model, image size, untiled and tiled.

    python benchmarks/inference_memory.py [--models unet-small nafnet-width32] [--sizes 1280x720 4096x3072]
                                          [--max-pixels 262144] [--repeats 2] [--skip MODEL:SIZE:MODE ...]

Models as the experiments build them: the U-Net experiment's 'small' (``experiments/unet.py``)
and NAFNet width 32 with the test-time local converter (``experiments/gopro_nafnet.py``), with
random parameters (the cost does not depend on their values). Each case runs in a fresh Python
process, so its peak resident set size (``ru_maxrss``) is its own: imports, initialisation,
compilation and restoration of a uint8 RGB image with ``jdeblur.infer.restore_with_model``, untiled
(the whole image in one call) or tiled (``--max-pixels`` per call, 64-px overlap). Prints, per case,
the peak RSS, the RSS before the first restoration (the runtime's floor), the median wall time of
``--repeats`` restorations after a warm-up (which compiles) and, untiled, GFLOP/s from XLA's cost
analysis of the forward pass. Cases named by ``--skip`` are not run (by default NAFNet width 32
at 4096x3072: over 6 min per pass on this CPU); for them the script prints an estimate instead:
untiled, from compiling the forward pass without running it, the buffers its executable needs
(XLA's ``memory_analysis``) and its FLOPs, timed at the GFLOP/s measured on the same model's
smaller image; tiled, the time of the smaller image scaled by the number of tiles. Last, per model
and size, tiled / untiled ratios of peak RSS and time.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {  # name: (experiment spec, overrides)
    "unet-small": ("unet", []),
    "nafnet-width32": ("gopro_nafnet:width32", []),
}
SIZES = {"1280x720": (720, 1280), "4096x3072": (3072, 4096)}
MODES = ("untiled", "tiled")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _model(name: str):
    import jax
    import jax.numpy as jnp

    from jdeblur import config as cfglib
    from jdeblur.models.registry import build_model

    module = build_model(cfglib.load_config(*MODELS[name]).model)
    side = module.size_multiple
    # Compiled without optimisation, as the trainer initialises (much faster to compile on CPU).
    init = jax.jit(module.init, compiler_options={"xla_backend_optimization_level": 0})
    return module, init(jax.random.key(0), jnp.zeros((1, side, side, 3)))["params"]


def forward_cost(name: str, size: str) -> dict:
    """XLA's FLOPs and buffer sizes of the untiled forward pass, from compiling it (nothing runs)."""
    import jax
    import jax.numpy as jnp

    from jdeblur import config as cfglib
    from jdeblur.models.registry import build_model

    module = build_model(cfglib.load_config(*MODELS[name]).model)
    height, width = SIZES[size]
    multiple = module.size_multiple
    image = jax.ShapeDtypeStruct((1, -(-height // multiple) * multiple, -(-width // multiple) * multiple, 3),
                                 jnp.float32)
    small = jax.ShapeDtypeStruct((1, multiple, multiple, 3), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), small)
    compiled = jax.jit(module.apply).lower(variables, image).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    memory = compiled.memory_analysis()
    buffers = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    return {"flops": float(analysis["flops"]), "buffers_mb": buffers / 2**20, "padded": image.shape[1:3],
            "multiple": multiple}


def tile_count(cost: dict, max_pixels: int) -> int:
    """Tiles of an image of ``cost['padded']`` size under the budget, as ``infer.restore`` cuts it."""
    from jdeblur.infer import DEFAULT_OVERLAP
    from jdeblur.tiling import tile_for_budget, tile_starts

    tile = tile_for_budget(max_pixels, size_multiple=cost["multiple"])
    counts = [len(tile_starts(n, min(tile, n), DEFAULT_OVERLAP, multiple=cost["multiple"]))
              for n in cost["padded"]]
    return counts[0] * counts[1]


def run_case(name: str, size: str, mode: str, max_pixels: int, repeats: int) -> dict:
    """Restores one random image of ``size`` with model ``name`` (in this process) and measures it."""
    import numpy as np

    from jdeblur import infer

    module, params = _model(name)
    height, width = SIZES[size]
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    budget = max_pixels if mode == "tiled" else None
    floor_mb = _peak_rss_mb()
    start = time.perf_counter()
    infer.restore_with_model(module, params, image, max_pixels=budget)  # warm-up: compiles
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        restored = infer.restore_with_model(module, params, image, max_pixels=budget)
        times.append(time.perf_counter() - start)
    assert restored.shape == image.shape and restored.dtype == image.dtype
    return {"peak_rss_mb": _peak_rss_mb(), "floor_rss_mb": floor_mb, "first_s": first_s,
            "median_s": statistics.median(times)}


def child(command: list[str]) -> dict:
    output = subprocess.run([sys.executable, os.path.abspath(__file__), *command], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def estimate(name: str, mode: str, cost: dict, results: dict, costs: dict) -> str:
    """What a skipped case would cost, from XLA's analysis and the same model's measured smaller image."""
    measured = [(size, r) for (n, size, m), r in results.items() if n == name and m == mode]
    if mode == "untiled":
        text = f"XLA's buffers for the untiled pass {cost['buffers_mb']:.0f} MB, " \
               f"{cost['flops'] / 1e9:.0f} GFLOP"
        if measured:
            rate = measured[0][1]["gflops"]
            text += f"; about {cost['flops'] / rate / 1e9 / 60:.0f} min per pass at the {rate:.0f} GFLOP/s " \
                    f"measured at {measured[0][0]}"
        return text
    text = f"{cost['tiles']} tiles"
    if measured:
        size, r = measured[0]
        minutes = r["median_s"] * cost["tiles"] / costs[(name, size)]["tiles"] / 60
        text += f"; about {minutes:.0f} min per pass ({costs[(name, size)]['tiles']} tiles took " \
                f"{r['median_s']:.1f} s at {size})"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--max-pixels", type=int, default=512 * 512, help="pixels per model call when tiled")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*",
                        default=["nafnet-width32:4096x3072:untiled", "nafnet-width32:4096x3072:tiled"],
                        help="MODEL:SIZE:MODE cases to estimate instead of running")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SIZE", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--cost", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(*args.child, args.max_pixels, args.repeats)))
        return
    if args.cost:
        print(json.dumps(forward_cost(*args.cost)))
        return

    print(f"uint8 RGB, tiled: {args.max_pixels} px per call, 64-px overlap; median of {args.repeats} after a "
          f"warm-up (first: compile + run); one process per case; {os.cpu_count()} CPUs")
    results, costs = {}, {}
    for name in args.models:
        for size in args.sizes:
            cost = child(["--cost", name, size])
            for mode in MODES:
                case = f"{name}:{size}:{mode}"
                cost["tiles"] = tile_count(cost, args.max_pixels)
                costs[(name, size)] = cost
                if case in args.skip:
                    print(f"{case:36s} skipped: {estimate(name, mode, cost, results, costs)}", flush=True)
                    continue
                r = child(["--child", name, size, mode, "--max-pixels", str(args.max_pixels),
                           "--repeats", str(args.repeats)])
                # Tiles overlap, so a tiled pass does more than the untiled FLOPs: rated untiled only.
                r["gflops"] = cost["flops"] / r["median_s"] / 1e9 if mode == "untiled" else None
                results[(name, size, mode)] = r
                rate = f"{r['gflops']:.1f} GFLOP/s" if r["gflops"] else "-"
                print(f"{case:36s} peak RSS {r['peak_rss_mb']:7.0f} MB (floor {r['floor_rss_mb']:.0f} MB), "
                      f"{r['median_s']:7.2f} s per image (first {r['first_s']:.1f} s), {rate}; "
                      f"untiled: XLA buffers {cost['buffers_mb']:.0f} MB, {cost['flops'] / 1e9:.0f} GFLOP",
                      flush=True)
    for name in args.models:
        for size in args.sizes:
            untiled, tiled = results.get((name, size, "untiled")), results.get((name, size, "tiled"))
            if untiled and tiled:
                print(f"{name} {size}: tiled / untiled peak RSS = "
                      f"{tiled['peak_rss_mb'] / untiled['peak_rss_mb']:.2f}, "
                      f"time = {tiled['median_s'] / untiled['median_s']:.2f}")


if __name__ == "__main__":
    main()
