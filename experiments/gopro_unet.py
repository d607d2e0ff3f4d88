"""The residual U-Net on GoPro, trained with NAFNet's recipe, for a comparison at equal budget.

Goal: how far a plain residual U-Net ('base', 22.7M parameters, 53.5 GFLOPs at 256x256) gets
with the recipe that gives NAFNet-width32 (17.1M, 32.4 GFLOPs) 32.87 dB on GoPro (Chen et al.
2022, Table 2). No published figure for this model; the NAFNet recipe is in gopro_nafnet.py.

Needs GoPro (GOPRO_Large) on disk. Run:
    python launch.py train --config experiments/gopro_unet.py --workdir runs/gopro_unet \\
        --config.data.manual_dir=/data/GOPRO_Large
"""
from jdeblur.train.defaults import base_config


def get_config(arg=None):
    if arg is not None:
        raise ValueError(f"unknown variant {arg!r}; this experiment has none")
    c = base_config()
    c.model.name = "unet"
    c.model.variant = "base"
    c.data.name = "gopro"
    c.data.builder_config = "blur"
    c.data.patch_size = 256
    c.loss.charbonnier = 0.0
    c.loss.psnr = 1.0
    c.optim.update(dict(name="adamw", lr=1e-3, b1=0.9, b2=0.9, weight_decay=1e-3, schedule="cosine",
                        final_lr=1e-7, warmup_steps=0, clip_norm=0.0))
    c.train.update(dict(steps=200_000, global_batch=32, log_every=200, eval_every=10_000,
                        checkpoint_every=5_000, keep_checkpoints=3))
    c.eval.update(dict(convention="uint8", max_pixels=1280 * 720, samples=4))
    return c
