"""Loss ablation: the U-Net experiment trained with L1, PSNR, 1 - SSIM or L1 + frequency, three seeds each.

Goal: does the training loss matter at the U-Net experiment's model, data and budget, by more than the
spread over seeds? Everything but the loss is the U-Net experiment's (experiments/unet.py).

Sources: L1 and 1 - SSIM as compared by Zhao, Gallo, Frosio and Kautz, "Loss Functions for Image
Restoration with Neural Networks" (IEEE TCI 2017, Table I); the PSNR loss of NAFNet (Chen et al.,
ECCV 2022; ``PSNRLoss`` in its official code); L1 + 0.1 x the L1 distance of the 2-D spectra, the
content + frequency loss of MIMO-UNet (Cho et al., ICCV 2021, Eq. 5). The weights are those of the
``loss`` group (jdeblur/losses.py: ``l1``, ``psnr``, ``ssim``, ``fft_l1``).

Run (4 points x 3 seeds, one U-Net run each), print the commands for a cluster instead, then
gather the table (mean ± std over seeds):
    python launch.py sweep --config experiments/ablate_loss.py --root runs/ablate_loss
    python launch.py sweep --config experiments/ablate_loss.py --root runs/ablate_loss --dry-run
    python launch.py report --root runs/ablate_loss
The same sweep shrunk to the U-Net's runlocal size (two seeds; 84 s here for its 8 runs):
    python launch.py sweep --config experiments/ablate_loss.py:runlocal --root /tmp/ablate_loss
One run (the L1 + frequency point, the one with two terms) at that size:
    python launch.py train --config experiments/ablate_loss.py:runlocal --workdir /tmp/ablate_loss_run

Results: docs/results-and-ablations.md#ablations (full size, three seeds, three of the four points).
"""
from jdeblur import config as cfglib

LABELS = ("l1", "psnr", "1-ssim", "l1+fft")
# One row per point: the weight of each loss term (every other term is 0).
WEIGHTS = {
    "loss.l1": (1.0, 0.0, 0.0, 1.0),
    "loss.psnr": (0.0, 1.0, 0.0, 0.0),
    "loss.ssim": (0.0, 0.0, 1.0, 0.0),
    "loss.fft_l1": (0.0, 0.0, 0.0, 0.1),
}


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = cfglib.load_config("unet" if arg is None else "unet:runlocal")
    for name in c.loss:
        c.loss[name] = 0.0  # whatever the U-Net experiment trains with; the sweep sets the terms
    if arg is None:
        c.loss.l1 = 1.0
    else:  # the point with two terms, evaluated once on one image
        c.loss.l1, c.loss.fft_l1 = 1.0, 0.1
        c.train.log_every = c.train.eval_every = c.train.checkpoint_every = c.train.steps
        c.eval.max_images = c.eval.samples = 1
    return c


def get_sweep(arg=None):
    return dict(seeds=(0, 1, 2) if arg is None else (0, 1), zip=WEIGHTS, labels=LABELS)
