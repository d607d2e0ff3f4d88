"""Training-step throughput against the machine's own peak: images/s, XLA FLOPs, GFLOP/s, % of peak.

    python benchmarks/train_step.py [--cases quickstart unet-tiny ...] [--repeats 5] [--seconds 1.0] [--xla-kernels] [--older-emitters]

Each case is an experiment config (``experiments/*.py``, shrunk to CPU-sized patches where the
recipe's are too large) whose train step is built as the trainer builds it: the model, loss,
optimizer and ``prepare`` (on-device synthetic degradation, or the pairs' conversion for paired
data) of ``jdeblur.train.loop``, ``make_train_step``, wrapped by ``parallel.parallelize`` (shard_map
over one device, state donated). Batches are random uint8 images of the loader's shape (patch plus
the blur's margin). FLOPs per step come from XLA's cost analysis of the compiled step, so they
count what XLA runs (a multiply-add is 2 FLOPs), degradation included.

XLA's count is not comparable across ways of writing the same model: it counts a grouped
(depthwise) convolution's gradients as dense ones (NAFNet's step with XLA's convolutions: 2.7x its
forward FLOPs x 3) and a ``lax.scan`` body once. So the table also shows the model's FLOPs: 3x XLA's
count of the forward pass with XLA's convolutions, unrolled (a backward pass costs about twice a
forward one), and the fractions of the peak from them ("model" columns).

The peak is measured in the same run: a 2048x2048 float32 matmul and a 3x3 convolution
(64 -> 64 channels, 8x128x128, NHWC, ``lax.conv_general_dilated``). Every timed thing is compiled
first, then the cases are timed in interleaved rounds (each round times every case once, for about
``--seconds``), so that the machine's load, shared with other jobs, hits all of them alike; the
figures are medians over ``--repeats`` rounds.

``--degradation`` also times, for the quickstart, the on-device degradation alone (``prepare``
jitted by itself) and the same step without it (the network fed already degraded inputs), and
prints degradation / step.
"""
import argparse
import os
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jdeblur import config as cfglib  # noqa: E402
from jdeblur import host_memory  # noqa: E402
from jdeblur.data.datasets import image_keys as dataset_image_keys  # noqa: E402
from jdeblur.models import unet  # noqa: E402
from jdeblur.models.registry import build_model  # noqa: E402
from jdeblur.train import loop, optim, parallel  # noqa: E402
from jdeblur.train.state import initial_state  # noqa: E402

# name: (experiment spec, overrides). The GoPro recipes train on 256x256 patches in batches of 32
# or more: here 64x64 and small batches, so that a CPU step takes about a second.
CASES = {
    "quickstart": ("unet", []),
    "unet-tiny": ("unet:runlocal", []),
    "unet-base": ("gopro_unet", ["data.patch_size=64", "train.global_batch=4"]),
    "nafnet-tiny": ("gopro_nafnet:width32", ["model.variant=tiny", "model.kwargs.train_size=64",
                                              "data.patch_size=64", "train.global_batch=4"]),
    "nafnet-width32": ("gopro_nafnet:width32", ["model.kwargs.train_size=64", "data.patch_size=64",
                                                 "train.global_batch=2"]),
    # benchmarks/vs_pytorch.py's training step: 2 pairs of 128x128, gradients clipped as the official trainer.
    "nafnet-width32-128": ("gopro_nafnet:width32", ["data.patch_size=128", "train.global_batch=2",
                                                     "optim.clip_norm=0.01"]),
    "nonblind": ("nonblind", []),
    "nonblind-margin6": ("nonblind", ["model.kwargs={'prior_margin': 6}"]),
    "blind": ("blind", []),
    # Not run by default: the quickstart recomputing each block's activations in the backward pass.
    "quickstart-remat": ("unet", ["model.kwargs={'norm': 'none', 'activation': 'relu', "
                                        "'upsample': 'transpose', 'remat': True}"]),
}
DEFAULT_CASES = ("quickstart", "unet-tiny", "unet-base", "nafnet-tiny", "nafnet-width32")
MATMUL_SIDE = 2048
CONV_SHAPE = (8, 128, 128, 64)  # N, H, W, C; 3x3 kernel, C -> C


def flops_of(compiled) -> float:
    analysis = compiled.cost_analysis()
    # Older JAX returned one dict per device program; current JAX returns the dict.
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"])


def model_step_flops(config, model) -> float:
    """3x XLA's FLOPs of ``model``'s forward pass on the step's batch, with XLA's convolutions, unrolled."""
    if "kernels" in model.__dataclass_fields__:
        model = model.clone(kernels="xla")
    x = jax.ShapeDtypeStruct((config.train.global_batch, config.data.patch_size, config.data.patch_size, 3),
                             jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    analysis = jax.jit(model.apply).lower(variables, x).cost_analysis()
    return 3 * float(analysis["flops"])


class Timed:
    """A compiled computation, how to call it repeatedly, its FLOPs per call and its timings."""

    def __init__(self, name: str, compiled, args: tuple, *, images: int = 0, threads_state: bool = False,
                 model_flops: float | None = None):
        self.name, self.compiled, self.args, self.images = name, compiled, args, images
        self.threads_state = threads_state  # the first argument is donated and returned: feed it back
        self.flops = flops_of(compiled)
        self.model_flops = model_flops
        self.seconds: list[float] = []
        self.calls = 1

    def call(self):
        out = self.compiled(*self.args)
        if self.threads_state:
            self.args = (out[0], *self.args[1:])
        return out

    def calibrate(self, seconds: float) -> None:
        """Warms up, then picks the number of calls per measurement that takes about ``seconds``."""
        jax.block_until_ready(self.call())
        start = time.perf_counter()
        jax.block_until_ready(self.call())
        self.calls = max(1, round(seconds / (time.perf_counter() - start)))

    def measure(self) -> None:
        start = time.perf_counter()
        for _ in range(self.calls):
            out = self.call()
        jax.block_until_ready(out)
        self.seconds.append((time.perf_counter() - start) / self.calls)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def gflops(self) -> float:
        return self.flops / self.median_s / 1e9


def peak_matmul() -> Timed:
    a = jax.random.normal(jax.random.key(0), (MATMUL_SIDE, MATMUL_SIDE), jnp.float32)
    compiled = jax.jit(jnp.matmul).lower(a, a).compile()
    return Timed(f"matmul {MATMUL_SIDE}x{MATMUL_SIDE} f32", compiled, (a, a))


def conv3x3(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def peak_conv(shape=CONV_SHAPE) -> Timed:
    n, h, w, c = shape
    x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
    kernel = jax.random.normal(jax.random.key(2), (3, 3, c, c), jnp.float32) / (3 * c**0.5)
    compiled = jax.jit(conv3x3).lower(x, kernel).compile()
    return Timed(f"conv 3x3 {c}->{c}, {n}x{h}x{w}", compiled, (x, kernel))


def load_case(name: str):
    spec, overrides = CASES[name]
    return cfglib.load_config(spec, overrides)


def random_batch(config, rng: np.random.Generator) -> dict:
    """A batch as the loader delivers it: uint8 patches plus the blur's margin on each side."""
    side = config.data.patch_size + 2 * loop.input_margin(config)
    shape = (config.train.global_batch, side, side, 3)
    return {k: rng.integers(0, 256, shape, dtype=np.uint8) for k in dataset_image_keys(config.data.name)}


class FlaxConvTransposeUNet(unet.UNet):
    """The U-Net with its up-convolutions as Flax's ``nn.ConvTranspose`` (jdeblur's before the
    ``TransposeConv2x2`` rewrite): the reference that ``--conv-transpose`` times side by side."""

    def _up(self, x, name: str):
        if self.upsample != "transpose":
            return super()._up(x, name)
        return nn.ConvTranspose(x.shape[-1] // 2, (2, 2), strides=(2, 2), padding="VALID", dtype=self.dtype,
                                param_dtype=self.param_dtype, name=name)(x)


def flax_conv_transpose_model(config):
    """``FlaxConvTransposeUNet`` with the fields of the config's U-Net; checks that it computes the same."""
    model = build_model(config.model)
    fields = {f: getattr(model, f) for f in model.__dataclass_fields__ if f not in ("parent", "name")}
    variant = FlaxConvTransposeUNet(**fields)
    x = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
    params = model.init(jax.random.key(4), x)["params"]
    # Zero-initialised last convolutions would hide a difference: give every parameter a value.
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.key(5), p.shape) * 0.1, params)
    expected = model.apply({"params": params}, x)
    error = np.max(np.abs(expected - variant.apply({"params": params}, x))) / np.max(np.abs(expected))
    assert error < 1e-5, f"the variant computes something else (relative difference {error})"
    return variant


def build_step(config, mesh, *, prepare=None, model=None, donate: bool = True):
    """The trainer's step for ``config`` (``prepare`` or ``model`` replaced if given) over ``mesh``."""
    model = model if model is not None else build_model(config.model)
    tx, schedule = optim.make_optimizer(config.optim, config.train.steps)
    train_step = loop.build_train_step(config, mesh, model, tx, schedule, prepare=prepare)
    if not donate:
        train_step = jax.jit(train_step.__wrapped__)  # the same shard_map, without donation
    state = parallel.replicate(initial_state(config, model, tx, jax.random.key(0)), mesh)
    return train_step, state


def step_case(name: str, config, mesh, batch: dict, *, compiler_options: dict | None = None, **kw) -> Timed:
    train_step, state = build_step(config, mesh, **kw)
    placed = parallel.place_batch(batch, mesh, config.train.parallel)
    key = jax.random.key(1)
    compiled = train_step.lower(state, placed, key).compile(compiler_options=compiler_options)
    model = kw.get("model") or build_model(config.model)
    return Timed(name, compiled, (state, placed, key), images=config.train.global_batch, threads_state=True,
                 model_flops=model_step_flops(config, model))


def per_image_keys(key, count: int):
    """The step's per-image keys at step 0 on one device (``step.image_keys`` without the mesh axis)."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(key, 0), jnp.arange(count))


def degradation_cases(config, mesh, batch: dict) -> list[Timed]:
    """The quickstart's degradation alone, and its step without degradation (inputs given degraded)."""
    prepare = loop.make_prepare(config)
    key = jax.random.key(1)
    keys = per_image_keys(key, config.train.global_batch)
    sharp = jnp.asarray(batch["sharp"])
    alone = Timed("degradation alone (prepare)", jax.jit(prepare).lower(keys, {"sharp": sharp}).compile(),
                  (keys, {"sharp": sharp}))
    inputs, targets = jax.jit(prepare)(keys, {"sharp": sharp})
    pairs = {k: np.asarray(v * 255).astype(np.uint8) for k, v in (("blurred", inputs["blurred"]),
                                                                    ("sharp", targets["image"]))}

    def prepare_pairs(keys, batch):
        del keys
        return ({"blurred": batch["blurred"].astype(jnp.float32) / 255.0},
                {"image": batch["sharp"].astype(jnp.float32) / 255.0})

    without = step_case("quickstart step without degradation", config, mesh, pairs, prepare=prepare_pairs)
    return [alone, without]


def main():
    # As the trainer's command runs, before the first computation makes JAX's CPU client
    # (jdeblur.host_memory; JDEBLUR_HOST_MEMORY=system turns it off).
    kept = host_memory.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; medians over them")
    parser.add_argument("--seconds", type=float, default=1.0, help="about this long per measurement")
    parser.add_argument("--degradation", action="store_true", help="also time the U-Net experiment's degradation")
    parser.add_argument("--no-donation", action="store_true",
                        help="also time the quickstart without donation")
    parser.add_argument("--xla-kernels", action="store_true",
                        help="also time each NAFNet case with XLA's convolutions, unrolled (kernels='xla', "
                             "the implementation before the CPU forms of jdeblur.models.nafnet)")
    parser.add_argument("--older-emitters", action="store_true",
                        help="also time each case compiled with XLA:CPU's older fusion emitters "
                             "(xla_cpu_use_fusion_emitters=False, as the test suite compiles)")
    parser.add_argument("--conv-transpose", action="store_true",
                        help="also time the quickstart with Flax's nn.ConvTranspose up-convolutions "
                             "(before jdeblur's TransposeConv2x2)")
    args = parser.parse_args()

    mesh = parallel.make_mesh(1)
    rng = np.random.default_rng(0)
    peaks = [peak_matmul(), peak_conv()]
    steps, extra = [], []
    for name in args.cases:
        config = load_case(name)
        start = time.perf_counter()
        batch = random_batch(config, rng)
        steps.append(step_case(name, config, mesh, batch))
        print(f"compiled {name} in {time.perf_counter() - start:.1f} s", flush=True)
        if args.xla_kernels and name.startswith("nafnet"):
            start = time.perf_counter()
            steps.append(step_case(f"{name} kernels=xla", config, mesh, batch,
                                   model=build_model(config.model).clone(kernels="xla")))
            print(f"compiled {name} kernels=xla in {time.perf_counter() - start:.1f} s", flush=True)
        if args.older_emitters:
            start = time.perf_counter()
            steps.append(step_case(f"{name} older emitters", config, mesh, batch,
                                   compiler_options={"xla_cpu_use_fusion_emitters": False}))
            print(f"compiled {name} with the older emitters in {time.perf_counter() - start:.1f} s", flush=True)
    if args.degradation or args.no_donation or args.conv_transpose:
        config = load_case("quickstart")
        batch = random_batch(config, rng)
        if args.degradation:
            extra += degradation_cases(config, mesh, batch)
        if args.no_donation:
            extra.append(step_case("quickstart without donation", config, mesh, batch, donate=False))
        if args.conv_transpose:
            extra.append(step_case("quickstart, nn.ConvTranspose up-convolutions", config, mesh, batch,
                                   model=flax_conv_transpose_model(config)))
    timed = peaks + steps + extra
    for t in timed:
        t.calibrate(args.seconds)
    for _ in range(args.repeats):
        for t in timed:
            t.measure()

    print(f"\n{jax.devices()[0].device_kind} ({os.cpu_count()} CPUs), jax {jax.__version__}, "
          f"median of {args.repeats} interleaved rounds; load average {os.getloadavg()[0]:.1f}; freed memory "
          f"{'kept (jdeblur.host_memory)' if kept else 'returned (glibc defaults)'}")
    for p in peaks:
        print(f"peak  {p.name:32s} {p.median_s * 1e3:8.1f} ms  {p.flops / 1e9:7.2f} GFLOP  "
              f"{p.gflops:6.1f} GFLOP/s")
    conv_peak = peaks[1].gflops
    print("\n| case | config | batch | ms/step | images/s | GFLOP/step (XLA) | GFLOP/s | of matmul peak "
          "| of conv peak | model GFLOP/step | of conv peak (model) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in steps + [e for e in extra if e.images]:
        spec, overrides = CASES.get(t.name.split(" ")[0], CASES["quickstart"])
        model_rate = t.model_flops / t.median_s / 1e9
        print(f"| {t.name} | {spec} {' '.join(overrides)} | {t.images} | {t.median_s * 1e3:.0f} | "
              f"{t.images / t.median_s:.1f} | {t.flops / 1e9:.2f} | {t.gflops:.1f} | "
              f"{t.gflops / peaks[0].gflops:.0%} | {t.gflops / conv_peak:.0%} | {t.model_flops / 1e9:.2f} | "
              f"{model_rate / conv_peak:.0%} |")
    by_name = {t.name: t for t in timed}
    if args.degradation and "quickstart" in by_name:
        step, alone = by_name["quickstart"], by_name["degradation alone (prepare)"]
        without = by_name["quickstart step without degradation"]
        print(f"\ndegradation alone: {alone.median_s * 1e3:.1f} ms ({alone.flops / 1e9:.3f} GFLOP); "
              f"step {step.median_s * 1e3:.1f} ms; step without degradation {without.median_s * 1e3:.1f} ms")
        print(f"degradation / step = {alone.median_s / step.median_s:.1%} (alone); "
              f"{1 - without.median_s / step.median_s:.1%} (step minus step without it)")
    if "quickstart" in by_name:
        print(f"quickstart step / conv peak = {by_name['quickstart'].gflops / conv_peak:.0%} (target >= 50%)")


if __name__ == "__main__":
    main()
