"""Width ablation: the U-Net experiment's network at half, the same and twice its width, three seeds each.

Goal: how the restoration quality scales with the network's width (channels at full resolution,
doubled at every level; ``model.kwargs.width``) at the U-Net experiment's data, schedule and number of
steps (experiments/unet.py; 8/16/32 for its width-16 U-Net). Parameters and FLOPs grow about
as the width squared, so the wider point also takes about four times the training time.

Source: the width scaling of NAFNet (Chen et al., ECCV 2022: width 32 against 64 on GoPro,
32.87 against 33.71 dB, Table 2) and of the U-Nets of image restoration; no published table for
this model at this budget.

Run (3 points x 3 seeds, one U-Net run each), print the commands for a cluster instead, then
gather the table (mean ± std over seeds):
    python launch.py sweep --config experiments/ablate_width.py --root runs/ablate_width
    python launch.py sweep --config experiments/ablate_width.py --root runs/ablate_width --dry-run
    python launch.py report --root runs/ablate_width
The same sweep shrunk to the U-Net's runlocal size (two seeds), and one run at that size:
    python launch.py sweep --config experiments/ablate_width.py:runlocal --root /tmp/ablate_width
    python launch.py train --config experiments/ablate_width.py:runlocal --workdir /tmp/width_run

Results: not run at full size yet (about 3 hours here); docs/results-and-ablations.md#ablations.
"""
from jdeblur import config as cfglib
from jdeblur.models.registry import build_model


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = cfglib.load_config("unet" if arg is None else "unet:runlocal")
    with c.model.kwargs.unlocked():  # the width made explicit, so that the sweep can set it
        c.model.kwargs.width = build_model(c.model).width
    if arg == "runlocal":  # one evaluation, on one image
        c.train.log_every = c.train.eval_every = c.train.checkpoint_every = c.train.steps
        c.eval.max_images = c.eval.samples = 1
    return c


def get_sweep(arg=None):
    width = get_config(arg).model.kwargs.width
    widths = (width // 2, width, 2 * width)
    return dict(seeds=(0, 1, 2) if arg is None else (0, 1), zip={"model.kwargs.width": widths},
                labels=tuple(f"width{w}" for w in widths))
