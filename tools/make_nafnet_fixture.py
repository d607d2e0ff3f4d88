#!/usr/bin/env python
"""Writes the small fixtures that let jdeblur's tests check parity with the official NAFNet without PyTorch.

Run by a developer, once, where PyTorch is installed (not a jdeblur requirement), with the official
code (megvii-research/NAFNet) checked out; it is imported from that path, never copied:

    /work/venv-torch/bin/python tools/make_nafnet_fixture.py --nafnet /work/ext/NAFNet --out tests/fixtures

Needs torch, numpy, safetensors, opencv-python-headless and scikit-image (the official metrics
module imports cv2 and skimage). Writes, under ``--out``:

- ``nafnet/official.pth``: a width-4, four-level official NAFNet with random weights, saved as
  BasicSR saves (``{'params': state_dict}``); LayerNorm, beta and gamma drawn away from their
  initial values so that every path counts. ``official.safetensors``: the same state dict.
- ``nafnet/io.npz``: a 40x52 input (not a multiple of 16: the official model zero-pads inside)
  and the outputs of ``NAFNet`` and of ``NAFNetLocal`` (TLC) for training sizes 24 (not a multiple
  of 16) and 16, NHWC; and a 128x128 8-bit photo with ``NAFNet``'s output as 8 bits (as
  ``tensor2img`` makes it), for ``launch.py deblur`` end to end (128: no padding at all there).
- ``checkpoints/dtypes.pth`` (zip), ``dtypes_legacy.pth`` (``_use_new_zipfile_serialization=False``),
  ``dtypes.safetensors``: float32, float16 and bfloat16 tensors, a transposed (strided) one, two
  views of one storage and an ``nn.Parameter``; ``dtypes.npz``: their values as float32.
  ``extra_global.pth``: a state dict beside an ``argparse.Namespace`` (as training scripts save).
- ``metrics/nafnet_ssim.npz``: uint8 image pairs and the values of the official
  ``calculate_psnr`` / ``calculate_ssim`` (the 3-D window, ``_ssim_3d``) on them, given BGR arrays as
  its ``tensor2img`` pipeline does. ``_ssim_3d`` moves its tensors with ``.cuda()``; that is made
  a no-op while it runs, so the reference is computed on the CPU in float32.
"""
import argparse
import collections
import contextlib
import importlib
import logging
import pathlib
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

# Two blocks in the deepest encoder level and the last decoder level: runs that jdeblur scans on CPU.
WIDTH, BLOCKS = 4, dict(enc_blk_nums=[1, 1, 1, 2], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 2])
INPUT_SHAPE = (1, 3, 40, 52)  # NCHW
PHOTO_SHAPE = (1, 3, 128, 128)  # a multiple of jdeblur.photos.COMPILE_MULTIPLE
TLC_TRAIN_SIZES = (24, 16)


def import_official(root: pathlib.Path, module: str):
    """Imports ``module`` (e.g. ``basicsr.models.archs.NAFNet_arch``) from the checkout at ``root``.

    The packages' ``__init__`` files import the whole training framework (lmdb, torchvision, ...);
    they are replaced by empty packages over the same folders, so only the modules named and what
    they import run. ``arch_util``'s one import from ``basicsr.utils`` is a logger.
    """
    for package in ("basicsr", "basicsr.models", "basicsr.models.archs", "basicsr.metrics", "basicsr.utils"):
        if package not in sys.modules:
            stub = types.ModuleType(package)
            stub.__path__ = [str(root / package.replace(".", "/"))]
            sys.modules[package] = stub
    sys.modules["basicsr.utils"].get_root_logger = logging.getLogger
    return importlib.import_module(module)


@contextlib.contextmanager
def cuda_is_cpu():
    """Makes ``.cuda()`` a no-op on tensors and modules, for reference code that hard-codes it."""
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kw: self
    torch.nn.Module.cuda = lambda self, *args, **kw: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


def nhwc(tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1).copy()


def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """LayerNorm weights around 1, biases, beta and gamma around 0: none at its initial value."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith((".beta", ".gamma")):
                param.copy_(0.5 * noise)
            elif ".norm" in name and name.endswith(".weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.1 * noise)


def write_model_fixtures(root: pathlib.Path, out: pathlib.Path) -> None:
    arch = import_official(root, "basicsr.models.archs.NAFNet_arch")
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = arch.NAFNet(img_channel=3, width=WIDTH, **BLOCKS).eval()
    perturb(model, generator)
    state = model.state_dict()
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"params": state}, out / "official.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "official.safetensors"))

    x = torch.rand(INPUT_SHAPE, generator=generator)
    photo = torch.randint(0, 256, PHOTO_SHAPE, generator=generator).to(torch.uint8)
    outputs = {"input": nhwc(x), "photo": nhwc(photo)}
    with torch.no_grad():
        outputs["plain"] = nhwc(model(x))
        outputs["photo_out"] = nhwc((model(photo.float() / 255).clamp(0, 1) * 255).round().to(torch.uint8))
        for size in TLC_TRAIN_SIZES:
            local = arch.NAFNetLocal(img_channel=3, width=WIDTH, train_size=(1, 3, size, size), **BLOCKS)
            local.load_state_dict(state)
            outputs[f"tlc{size}"] = nhwc(local.eval()(x))
    np.savez_compressed(out / "io.npz", **outputs)
    print(f"{out}: {sum(v.numel() for v in state.values())} parameters; outputs "
          + ", ".join(f"{k} in [{v.min():.2f}, {v.max():.2f}]" for k, v in outputs.items()))


def write_checkpoint_fixtures(out: pathlib.Path) -> None:
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(3, 5, generator=generator)
    shared = torch.randn(12, generator=generator)
    state = collections.OrderedDict(
        float32=base,
        float16=torch.randn(2, 3, 1, 1, generator=generator).half(),
        bfloat16=torch.randn(7, generator=generator).bfloat16(),
        transposed=base.t(),  # strides (1, 5): a view read through its strides
        view_head=shared[:4],
        view_tail=shared[6:].view(2, 3),  # a storage offset
        parameter=torch.nn.Parameter(torch.randn(4, 2, generator=generator)),
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "dtypes.pth")
    torch.save(state, out / "dtypes_legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out / "dtypes.safetensors"))
    np.savez(out / "dtypes.npz", **{k: v.detach().float().numpy() for k, v in state.items()})
    torch.save({"params": collections.OrderedDict(weight=base), "args": argparse.Namespace(lr=1e-3)},
               out / "extra_global.pth")


def image_pairs(rng: np.random.Generator, height: int = 32, width: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    """uint8 RGB pairs over a range of SSIM: smooth images, then noisier copies (one shape: one batch to score)."""
    pairs = []
    for noise in (2.0, 10.0, 30.0, 60.0):
        coarse = rng.uniform(0, 255, (height // 4 + 1, width // 4 + 1, 3))
        smooth = np.kron(coarse, np.ones((4, 4, 1)))[:height, :width]
        target = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255)
        pred = np.clip(target + rng.normal(0, noise, smooth.shape), 0, 255)
        pairs.append((np.round(pred).astype(np.uint8), np.round(target).astype(np.uint8)))
    return pairs


def write_metric_fixtures(root: pathlib.Path, out: pathlib.Path) -> None:
    metrics = import_official(root, "basicsr.metrics.psnr_ssim")
    pairs = image_pairs(np.random.default_rng(2))
    record = {}
    with cuda_is_cpu():
        for i, (pred, target) in enumerate(pairs):
            bgr_pred, bgr_target = pred[..., ::-1].copy(), target[..., ::-1].copy()
            record[f"pred{i}"], record[f"target{i}"] = pred, target
            record[f"psnr{i}"] = metrics.calculate_psnr(bgr_pred, bgr_target, crop_border=0)
            record[f"ssim{i}"] = metrics.calculate_ssim(bgr_pred, bgr_target, crop_border=0)
            rgb = metrics.calculate_ssim(pred, target, crop_border=0)
            print(f"pair {i} {pred.shape}: psnr {record[f'psnr{i}']:.4f} ssim {record[f'ssim{i}']:.6f} "
                  f"(given RGB: {rgb:.6f})")
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "nafnet_ssim.npz", **record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nafnet", type=pathlib.Path, required=True, help="checkout of megvii-research/NAFNet")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("tests/fixtures"))
    args = parser.parse_args()
    write_model_fixtures(args.nafnet, args.out / "nafnet")
    write_checkpoint_fixtures(args.out / "checkpoints")
    write_metric_fixtures(args.nafnet, args.out / "metrics")
    for path in sorted(args.out.rglob("*")):
        if path.is_file():
            print(f"{path}: {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
