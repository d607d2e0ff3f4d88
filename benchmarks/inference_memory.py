"""Peak memory of full-image deblurring: untiled 1024x768 against tiled 4096x3072 (a 12-Mpx photo).

    python benchmarks/inference_memory.py [--variant tiny] [--max-pixels 262144] [--repeats 5]
                                          [--untiled-large]

Each case runs in a fresh Python process, so its peak resident set size (``ru_maxrss``) is its own:
imports, model initialisation, compilation and inference of a uint8 RGB image with a U-Net
(``jdeblur.infer.restore_with_model``). The tiled case gets a budget of ``--max-pixels`` per model
call (512x512 by default, 64-px overlap). ``--untiled-large`` adds the 4096x3072 image restored
whole, for contrast (it needs several GB). Prints, per case, the peak RSS, the RSS before the first
restoration (the runtime's floor) and the median wall time of ``--repeats`` restorations after a
warm-up; last, the ratio of the peak RSS of the 16x larger tiled image to the untiled one.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    "untiled 1024x768": dict(height=768, width=1024, tiled=False),
    "tiled 4096x3072": dict(height=3072, width=4096, tiled=True),
    "untiled 4096x3072": dict(height=3072, width=4096, tiled=False),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_case(case: str, variant: str, max_pixels: int, repeats: int) -> dict:
    """Restores one image of ``case`` (in this process) and measures it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jdeblur import infer
    from jdeblur.models.registry import get_model

    spec = CASES[case]
    module = get_model("unet", variant=variant)
    params = jax.jit(module.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    image = np.random.default_rng(0).integers(0, 256, (spec["height"], spec["width"], 3), dtype=np.uint8)
    budget = max_pixels if spec["tiled"] else None
    floor_mb = _peak_rss_mb()

    infer.restore_with_model(module, params, image, max_pixels=budget)  # warm-up: compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        restored = infer.restore_with_model(module, params, image, max_pixels=budget)
        times.append(time.perf_counter() - start)
    assert restored.shape == image.shape and restored.dtype == image.dtype
    return {"peak_rss_mb": _peak_rss_mb(), "floor_rss_mb": floor_mb, "median_s": statistics.median(times)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny", help="U-Net variant")
    parser.add_argument("--max-pixels", type=int, default=512 * 512, help="pixels per model call when tiled")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--untiled-large", action="store_true", help="also restore 4096x3072 whole")
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.variant, args.max_pixels, args.repeats)))
        return

    cases = ["untiled 1024x768", "tiled 4096x3072"] + (["untiled 4096x3072"] if args.untiled_large else [])
    results = {}
    print(f"U-Net '{args.variant}', uint8 RGB, tile budget {args.max_pixels} px per call, "
          f"median of {args.repeats} after a warm-up, one process per case")
    for case in cases:
        command = [sys.executable, os.path.abspath(__file__), "--child", case, "--variant", args.variant,
                   "--max-pixels", str(args.max_pixels), "--repeats", str(args.repeats)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[case] = json.loads(output.strip().splitlines()[-1])
        r = results[case]
        print(f"{case:>18}: peak RSS {r['peak_rss_mb']:7.0f} MB (floor before restoring {r['floor_rss_mb']:.0f} MB),"
              f" {r['median_s']:.2f} s per image", flush=True)
    ratio = results["tiled 4096x3072"]["peak_rss_mb"] / results["untiled 1024x768"]["peak_rss_mb"]
    print(f"peak RSS ratio, tiled 4096x3072 (16x the pixels) / untiled 1024x768: {ratio:.2f}")


if __name__ == "__main__":
    main()
