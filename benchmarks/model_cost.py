"""Cost table of every registered model variant: parameters, and FLOPs of one forward pass from XLA.

    python benchmarks/model_cost.py [--size 256] [--models unet nafnet]

Parameters are counted from ``jax.eval_shape`` (nothing is initialised); FLOPs come from XLA's cost
analysis of the compiled forward pass (``jax.jit(apply).lower(...).compile().cost_analysis()``) on
one size x size RGB image, with a 19x19 kernel and the noise level for a non-blind model. XLA
counts a multiply-add as 2 FLOPs; papers quote MACs, so the table shows both (MACs = FLOPs / 2).
Prints a markdown table, with the published parameter counts where there are some (NAFNet, Chen et
al. 2022) and the ratio to them last.
"""
import argparse
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur.models.layers import count_params  # noqa: E402
from jdeblur.models.registry import example_inputs, get_model, list_models  # noqa: E402

# Chen et al. 2022, "Simple Baselines for Image Restoration", GoPro models.
PUBLISHED_PARAMS = {("nafnet", "width32"): 17.1e6, ("nafnet", "width64"): 67.9e6}
KERNEL_SIZE = 19


def model_cost(name: str, variant: str, size: int) -> dict:
    """Parameters and forward-pass FLOPs (XLA) of one model variant on a 1 x size x size x 3 image."""
    module = get_model(name, variant=variant)
    # A non-blind model also takes the kernel (KERNEL_SIZE px, the U-Net experiment's) and the noise level.
    inputs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in
              example_inputs(module, size=size, kernel_size=KERNEL_SIZE).values()]
    variables = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    start = time.perf_counter()
    compiled = jax.jit(module.apply).lower(variables, *inputs).compile()
    compile_s = time.perf_counter() - start
    analysis = compiled.cost_analysis()
    # Older JAX returned one dict per device program; current JAX returns the dict.
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return {"params": count_params(variables), "flops": float(analysis["flops"]), "compile_s": compile_s,
            "size_multiple": module.size_multiple}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--models", nargs="*", default=None, help="model names (default: all)")
    args = parser.parse_args()
    models = list_models()
    names = args.models or sorted(models)

    print(f"Cost of one forward pass on a 1x{args.size}x{args.size}x3 image "
          f"(XLA cost analysis, {jax.devices()[0].platform}, jax {jax.__version__})\n")
    print("| model | variant | parameters | GFLOPs (XLA) | GMACs | size multiple | published parameters | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for variant in models[name]:
            cost = model_cost(name, variant, args.size)
            published = PUBLISHED_PARAMS.get((name, variant))
            reference = f"{published / 1e6:.1f}M" if published else "-"
            ratio = f"{cost['params'] / published:.4f}" if published else "-"
            print(f"| {name} | {variant} | {cost['params'] / 1e6:.3f}M | {cost['flops'] / 1e9:.2f} | "
                  f"{cost['flops'] / 2e9:.2f} | {cost['size_multiple']} | {reference} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
