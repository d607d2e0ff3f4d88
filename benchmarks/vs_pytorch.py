"""jdeblur's NAFNet against the official PyTorch NAFNet, same weights, timed side by side in one process.

    python benchmarks/vs_pytorch.py [--rounds 5] [--official /path/to/NAFNet] [--cases fwd256 fwd720p train]

Needs PyTorch, which jdeblur never requires: run it from an environment holding both, e.g. a venv
with torch plus ``pip install -r requirements.txt``. Without torch it says so and exits 0.

The official architecture is imported from a checkout of megvii-research/NAFNet given by path
(``--official``, default ``$NAFNET_REPO``, else /work/ext/NAFNet): its ``NAFNet_arch.py``,
``arch_util.py``, ``local_arch.py`` and the loss file are loaded from there; nothing of it is copied
here. NAFNet width 32 (the GoPro configuration: blocks 1, 1, 1, 28 / 1 / 1, 1, 1, 1) is built in
PyTorch with random weights (the zero-initialised beta/gamma too, so every block works), and its
state dict converted to jdeblur's parameters; the two outputs are compared before anything is
timed.

Cases, both frameworks on float32 and on the same number of threads (XLA:CPU uses one per core
this process may run on; ``torch.set_num_threads`` is set to that; ``--cores N`` first restricts the
process to N of its cores):
- ``fwd256``, ``fwd720p``: inference on 1x3x256x256 and 1x3x720x1280 (``torch.inference_mode``,
  eval mode; jdeblur's ``jax.jit(model.apply)``);
- ``train``: one training step on a batch of ``--batch`` pairs of ``--patch``-pixel uint8 patches
  (default 2 of 128x128; the GoPro recipe's 32 of 256x256 is a GPU's size), as each codebase's
  trainer runs it: the official ``ImageRestorationModel.optimize_parameters`` (PSNRLoss, the
  ``0 * sum(parameters)`` term, backward, gradient clipping at norm 0.01 (its default), AdamW lr 1e-3,
  betas (0.9, 0.9), weight decay 1e-3, cosine schedule step) against jdeblur's trainer step
  (``jdeblur.train.loop.build_train_step`` for ``experiments/gopro_nafnet.py:width32`` at that batch
  and patch, clipping at 0.01 like the official trainer; it also computes PSNR and the gradient
  norm it logs).

Timing: everything is run twice first (jdeblur compiles then; the compile time is printed), then
``--rounds`` interleaved rounds: each round times each case once in each framework, alternating
which goes first; the figures are medians, with the page faults each call took (``getrusage``: memory
the process had to map afresh). The load average is printed before and after: on a
shared machine the ratio (PyTorch time / jdeblur time: above 1 means jdeblur is faster) is the
figure to read, printed last. On a loaded machine PyTorch's OpenMP threads suffer far more than
XLA's pool (measured: 14 s against 0.3 s for the 256x256 forward pass at load 12 on 2 cores), so
ratios on more than one core are only meaningful on a quiet machine; ``--cores 1`` compares the two
single-threaded, which load distorts much less.

Memory: as the ``jdeblur`` command on a CPU-only machine, the process keeps freed memory for reuse
and JAX runs its computations in the calling thread (``jdeblur.host_memory``), for both frameworks
alike; with ``JDEBLUR_HOST_MEMORY=system`` both run with glibc's defaults, under which XLA faults
its temporaries in again at every call.
"""
import argparse
import copy
import importlib.util
import logging
import os
import pathlib
import resource
import statistics
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from jdeblur import config as cfglib  # noqa: E402
from jdeblur import host_memory  # noqa: E402
from jdeblur.models.nafnet import KERNELS, Model  # noqa: E402
from jdeblur.train import loop, optim, parallel  # noqa: E402
from jdeblur.train.state import create_state  # noqa: E402

DEFAULT_OFFICIAL = os.environ.get("NAFNET_REPO", "/work/ext/NAFNet")
WIDTH32 = dict(width=32, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])
OFFICIAL_CLIP_NORM = 0.01  # ImageRestorationModel clips gradients at this norm unless use_grad_clip is off
CASES = ("fwd256", "fwd720p", "train")


def load_official(repo: pathlib.Path):
    """The official ``NAFNet`` class and ``PSNRLoss``, loaded from the checkout's files by path.

    The package ``__init__`` files import the whole training framework (OpenCV, lmdb, ...); the
    architecture needs only its own files, so empty parent packages are registered first.
    """
    for name in ("basicsr", "basicsr.models", "basicsr.models.archs", "basicsr.models.losses"):
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules.setdefault(name, package)
    utils = types.ModuleType("basicsr.utils")
    utils.get_root_logger = logging.getLogger  # the one name arch_util imports from it
    sys.modules.setdefault("basicsr.utils", utils)
    files = {"basicsr.models.archs.arch_util": "models/archs/arch_util.py",
             "basicsr.models.archs.local_arch": "models/archs/local_arch.py",
             "basicsr.models.archs.NAFNet_arch": "models/archs/NAFNet_arch.py",
             "basicsr.models.losses.loss_util": "models/losses/loss_util.py",
             "basicsr.models.losses.losses": "models/losses/losses.py"}
    for name, relative in files.items():
        spec = importlib.util.spec_from_file_location(name, repo / "basicsr" / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["basicsr.models.archs.NAFNet_arch"].NAFNet, sys.modules["basicsr.models.losses.losses"].PSNRLoss


def _jdeblur_module_name(torch_path: list[str]) -> list[str]:
    """jdeblur's parameter path for an official module path (e.g. encoders.3.27.conv2 -> enc3_block27/conv2)."""
    head, rest = torch_path[0], torch_path[1:]
    if head in ("intro", "ending"):
        return [head]
    if head == "downs":
        return [f"down{rest[0]}"]
    if head == "ups":  # ups.L.0 is the 1x1 convolution before PixelShuffle
        return [f"up{rest[0]}"]
    if head == "middle_blks":
        block, rest = f"middle_block{rest[0]}", rest[1:]
    else:
        prefix = {"encoders": "enc", "decoders": "dec"}[head]
        block, rest = f"{prefix}{rest[0]}_block{rest[1]}", rest[2:]
    return [block, "sca" if rest[0] == "sca" else rest[0]]


def convert_state_dict(state_dict) -> dict:
    """The official NAFNet's state dict as jdeblur's parameter tree (NCHW conv weights to HWIO)."""
    params = {}
    for name, tensor in state_dict.items():
        value = tensor.detach().cpu().numpy()
        *path, leaf = name.split(".")
        if leaf in ("beta", "gamma"):
            path, value = path + [leaf], value.reshape(-1)
        elif value.ndim == 4:
            leaf, value = "kernel", value.transpose(2, 3, 1, 0)
        elif path[-1].startswith("norm"):
            leaf = {"weight": "scale", "bias": "bias"}[leaf]
        keys = _jdeblur_module_name(path) + ([] if leaf in ("beta", "gamma") else [leaf])
        node = params
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = jnp.asarray(value)
    return params


class Timer:
    """One thing to time: ``run()`` does it once and returns when it is done."""

    def __init__(self, name: str, run):
        self.name, self.run, self.seconds, self.page_faults = name, run, [], []

    def measure(self) -> None:
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        self.run()
        self.seconds.append(time.perf_counter() - start)
        self.page_faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


def torch_forward(torch, net, image: np.ndarray):
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))

    def run():
        with torch.inference_mode():
            return net(x)

    return run


def torch_train_step(torch, net, psnr_loss_cls, batch: dict, steps: int):
    """The official trainer's ``optimize_parameters`` on ``batch`` (uint8 NHWC pairs), as a function."""
    net = copy.deepcopy(net).train()  # the forward cases keep the untrained copy
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.9), weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=1e-7)
    loss_fn = psnr_loss_cls()
    lq, gt = (torch.from_numpy(np.ascontiguousarray(batch[k].transpose(0, 3, 1, 2))) for k in ("blurred", "sharp"))

    def run():
        optimizer.zero_grad()
        loss = loss_fn(net(lq.float() / 255.0), gt.float() / 255.0)
        loss = loss + 0.0 * sum(p.sum() for p in net.parameters())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), OFFICIAL_CLIP_NORM)
        optimizer.step()
        scheduler.step()
        return loss.item()

    return run


def jdeblur_forward(model, params, image: np.ndarray):
    apply = jax.jit(model.apply)
    x = jnp.asarray(image)

    def run():
        return apply({"params": params}, x).block_until_ready()

    return run


def jdeblur_train_step(model, params, batch: dict, *, patch: int):
    """jdeblur's trainer step for the GoPro width-32 recipe at this batch and patch, from ``params``."""
    config = cfglib.load_config("gopro_nafnet:width32", [
        f"data.patch_size={patch}", f"train.global_batch={batch['sharp'].shape[0]}",
        f"optim.clip_norm={OFFICIAL_CLIP_NORM}"])
    mesh = parallel.make_mesh(1)
    tx, schedule = optim.make_optimizer(config.optim, config.train.steps)
    step = loop.build_train_step(config, mesh, model, tx, schedule)
    state = {"state": parallel.replicate(create_state(params, tx, ema=False), mesh)}
    placed = parallel.place_batch(batch, mesh, config.train.parallel)
    key = jax.random.key(0)

    def run():
        state["state"], stats = step(state["state"], placed, key)
        return float(stats["loss"])

    return run, config.train.steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians over them")
    parser.add_argument("--official", default=DEFAULT_OFFICIAL,
                        help="checkout of megvii-research/NAFNet (default $NAFNET_REPO or /work/ext/NAFNet)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--batch", type=int, default=2, help="training pairs per step")
    parser.add_argument("--patch", type=int, default=128, help="training patch side in pixels")
    parser.add_argument("--cores", type=int, default=None,
                        help="run on this many of the process's cores (default: all); both frameworks use as many threads")
    parser.add_argument("--kernels", default="auto", choices=KERNELS,
                        help="jdeblur's NAFNet kernels ('xla': XLA's convolutions, the implementation before "
                             "the CPU forms; jdeblur.models.nafnet)")
    args = parser.parse_args()
    # What the jdeblur command does (unless JDEBLUR_HOST_MEMORY=system), before the first computation:
    # both frameworks run under it, in one process.
    kept = host_memory.keep_freed_memory()
    try:
        import torch
    except ImportError:
        print("vs_pytorch: skipped, PyTorch is not installed in this environment (jdeblur never needs it; "
              "run this benchmark from a venv with torch and jdeblur's requirements)")
        return
    repo = pathlib.Path(args.official)
    if not (repo / "basicsr/models/archs/NAFNet_arch.py").is_file():
        print(f"vs_pytorch: skipped, no official NAFNet checkout at {repo} (--official or $NAFNET_REPO)")
        return

    if args.cores:  # before JAX starts its CPU backend, which sizes its thread pool from the affinity
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    official_cls, psnr_loss_cls = load_official(repo)
    torch.manual_seed(0)
    net = official_cls(img_channel=3, **WIDTH32)
    with torch.no_grad():
        for p in net.parameters():  # every block at work: beta and gamma start at zero otherwise
            p.add_(0.02 * torch.randn_like(p))
    net.eval()
    model = Model(variant="width32", kernels=args.kernels)
    params = convert_state_dict(net.state_dict())

    rng = np.random.default_rng(0)
    check = rng.random((1, 64, 64, 3), dtype=np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(check.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    difference = float(np.max(np.abs(np.asarray(jax.jit(model.apply)({"params": params}, check)) - expected)))
    print(f"same weights, same function: max |jdeblur - official| = {difference:.1e} on a 64x64 image")
    assert difference < 1e-4, "the converted model computes something else"

    pairs = []
    for case in args.cases:
        if case == "train":
            shape = (args.batch, args.patch, args.patch, 3)
            batch = {k: rng.integers(0, 256, shape, dtype=np.uint8) for k in ("blurred", "sharp")}
            jax_run, steps = jdeblur_train_step(model, params, batch, patch=args.patch)
            torch_run = torch_train_step(torch, net, psnr_loss_cls, batch, steps)
            label = f"train step, {args.batch}x{args.patch}x{args.patch}, PSNR loss, AdamW"
        else:
            height, width = (256, 256) if case == "fwd256" else (720, 1280)
            image = rng.random((1, height, width, 3), dtype=np.float32)
            jax_run, torch_run = jdeblur_forward(model, params, image), torch_forward(torch, net, image)
            label = f"forward, 1x3x{height}x{width}"
        start = time.perf_counter()
        jax_run()
        print(f"{label}: jdeblur's first call (compilation) {time.perf_counter() - start:.1f} s", flush=True)
        jax_run(), torch_run(), torch_run()
        pairs.append((label, Timer("pytorch", torch_run), Timer("jdeblur", jax_run)))

    load_before = os.getloadavg()
    for r in range(args.rounds):
        for _, torch_timer, jax_timer in pairs:
            order = (torch_timer, jax_timer) if r % 2 == 0 else (jax_timer, torch_timer)
            for timer in order:
                timer.measure()
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()

    print(f"\n{jax.devices()[0].device_kind}, {threads} threads each; jax {jax.__version__}, torch "
          f"{torch.__version__}; kernels={args.kernels}; freed memory "
          f"{'kept (jdeblur.host_memory)' if kept else 'returned (glibc defaults)'}; medians of {args.rounds} interleaved rounds; load "
          f"average (1/5/15 min) before {'/'.join(f'{v:.2f}' for v in load_before)}, after "
          f"{'/'.join(f'{v:.2f}' for v in load_after)}")
    print("\n| case | PyTorch | jdeblur | jdeblur speed relative to PyTorch | page faults per call, PyTorch / jdeblur |")
    print("|---|---:|---:|---:|---:|")
    for label, torch_timer, jax_timer in pairs:
        faults = " / ".join(f"{statistics.median(t.page_faults):.0f}" for t in (torch_timer, jax_timer))
        print(f"| {label} | {torch_timer.median_s:.3f} s | {jax_timer.median_s:.3f} s | "
              f"{torch_timer.median_s / jax_timer.median_s:.2f}x | {faults} |")
    print()
    for label, torch_timer, jax_timer in pairs:
        print(f"{label}: jdeblur {torch_timer.median_s / jax_timer.median_s:.2f}x PyTorch's speed")


if __name__ == "__main__":
    main()
