"""The residual U-Net on GoPro, trained with NAFNet's recipe, for a comparison at equal budget.

Goal: how far a plain residual U-Net ('base', 22.7M parameters, 53.5 GFLOPs at 256x256) gets
with the recipe that gives NAFNet-width32 (17.1M, 32.4 GFLOPs) 32.87 dB on GoPro (Chen et al.
2022, Table 2). No published figure for this model; the recipe (patches, batch, optimizer,
schedule, PSNR loss, evaluation) is gopro_nafnet.py's width32, from which this config derives.

Needs GoPro (GOPRO_Large) on disk. Run:
    python launch.py train --config experiments/gopro_unet.py --workdir runs/gopro_unet \\
        --config.data.manual_dir=/data/GOPRO_Large
``runlocal``: the same shrunk to a tiny U-Net, 32x32 patches and a few steps (as gopro_nafnet's):
    python launch.py train --config experiments/gopro_unet.py:runlocal --workdir /tmp/unet_local \\
        --config.data.manual_dir=/data/GOPRO_Large

Results: not run yet (needs GoPro and a GPU); docs/results-and-ablations.md#ablations says what has run.
"""
import ml_collections

from jdeblur import config as cfglib


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = cfglib.load_config("gopro_nafnet:width32" if arg is None else "gopro_nafnet:runlocal")
    c.model.name = "unet"
    c.model.variant = "base" if arg is None else "tiny"
    c.model.kwargs = ml_collections.ConfigDict()  # NAFNet's test-time local converter has no U-Net twin
    return c
