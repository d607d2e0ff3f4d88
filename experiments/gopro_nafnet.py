"""NAFNet on GoPro with the published recipe (Chen et al. 2022, "Simple Baselines for Image Restoration").

Goal: reproduce NAFNet's GoPro results: 32.87 dB PSNR / 0.9606 SSIM for width 32, 33.71 dB /
0.9668 for width 64 with the test-time local converter (Chen et al. 2022, Table 2; TLC: Chu et al.
2022). Recipe from the official options (``options/train/GoPro/NAFNet-width{32,64}.yml``):
256x256 patches, global batch 32 (width 32) or 64 (width 64), AdamW lr 1e-3, betas (0.9, 0.9),
weight decay 1e-3, cosine annealing to 1e-7 over
200k (width 32) or 400k (width 64) iterations, PSNR loss; evaluation on the full 1280x720 test
frames with TLC, zero padding as the official model pads, in the paper's metric convention
(``nafnet``: PSNR of the 8-bit outputs, and its BasicSR fork's SSIM with one 3-D window over
(H, W, RGB); ``jdeblur.metrics.CONVENTIONS``). Real blurred/sharp pairs: no synthetic degradation.

The official checkpoints run without training (docs/weights.md):
    python launch.py import-weights --checkpoint NAFNet-GoPro-width32.pth \\
        --config experiments/gopro_nafnet.py:width32 --workdir runs/nafnet32_official \\
        --config.data.manual_dir=/data/GOPRO_Large
    python launch.py eval --workdir runs/nafnet32_official

Needs GoPro (GOPRO_Large) on disk. Run:
    python launch.py train --config experiments/gopro_nafnet.py:width32 --workdir runs/nafnet32 \\
        --config.data.manual_dir=/data/GOPRO_Large
    python launch.py train --config experiments/gopro_nafnet.py:width64 --workdir runs/nafnet64 \\
        --config.data.manual_dir=/data/GOPRO_Large
``runlocal``: the width-32 recipe shrunk to a two-level, width-8 NAFNet, 32x32 patches and 8 steps,
scored on one test pair, to check a GoPro tree and the whole pipeline in well under a minute:
    python launch.py train --config experiments/gopro_nafnet.py:runlocal --workdir /tmp/nafnet_local \\
        --config.data.manual_dir=/data/GOPRO_Large

Results: not run yet (needs GoPro and a GPU); docs/results-and-ablations.md#ablations says what has run.
"""
from jdeblur.train.defaults import base_config

RECIPES = {
    "width32": dict(global_batch=32, steps=200_000),
    "width64": dict(global_batch=64, steps=400_000),
}


def get_config(arg="width32"):
    if arg == "runlocal":
        return shrink(get_config("width32"))
    if arg not in RECIPES:
        raise ValueError(f"unknown variant {arg!r}; expected one of {sorted(RECIPES)} or runlocal")
    recipe = RECIPES[arg]
    c = base_config()
    c.model.name = "nafnet"
    c.model.variant = arg
    c.model.kwargs = dict(tlc=True, train_size=256)  # local pooling only matters above 384 px
    c.data.name = "gopro"
    c.data.builder_config = "blur"
    c.data.patch_size = 256
    c.loss.charbonnier = 0.0
    c.loss.psnr = 1.0
    c.optim.update(dict(name="adamw", lr=1e-3, b1=0.9, b2=0.9, weight_decay=1e-3,
                        schedule="cosine", final_lr=1e-7, warmup_steps=0, clip_norm=0.0))
    c.train.update(dict(steps=recipe["steps"], global_batch=recipe["global_batch"], log_every=200,
                        eval_every=10_000, checkpoint_every=5_000, keep_checkpoints=3))
    c.eval.update(dict(convention="nafnet", pad="zero", max_pixels=1280 * 720, samples=4))
    return c


def shrink(c):
    """A GoPro recipe at test size: a two-level width-8 NAFNet, 32x32 patches, 8 steps, one evaluation
    on one pair (with the 'tiny' preset's four levels, the run took 30 s here instead of 16 s)."""
    c.model.variant = "tiny"
    c.model.kwargs.update(dict(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1)))
    c.model.kwargs.train_size = c.data.patch_size = 32
    c.train.update(dict(steps=8, global_batch=4, log_every=8, eval_every=8, checkpoint_every=8))
    c.eval.update(dict(max_images=1, samples=1))
    return c
