"""Blur-family ablation: train on Gaussian blur, motion blur or both; score each point on every family.

Goal: what a blind deblurring network learns from the blur families it is shown, and what it loses
on the families it was not shown: each point is scored on the same test images blurred by each
family in turn (``eval.blur_families``), whatever it trained on, so that the report's per-family
tables compare like with like. Everything else is the U-Net experiment's (experiments/unet.py),
including each family's kernel parameters (sizes, sigmas, motion lengths) and the noise.

Source: the synthetic training mixtures of blind deblurring papers, which train on motion
kernels only (Chakrabarti, ECCV 2016, random camera-shake kernels; Boracchi and Foi, IEEE TIP 2012
for the trajectories) or on a mix of Gaussian and motion kernels (Zhang et al., "Deep Unfolding
Network for Image Super-Resolution", CVPR 2020); no published table for this model.

Run (3 points x 3 seeds, one U-Net run each), print the commands for a cluster instead, then
gather the tables (all images, then one per blur family; mean ± std over seeds):
    python launch.py sweep --config experiments/ablate_blur_families.py --root runs/ablate_families
    python launch.py sweep --config experiments/ablate_blur_families.py --root runs/ablate_families --dry-run
    python launch.py report --root runs/ablate_families
The same sweep shrunk to the U-Net's runlocal size (two seeds; 79 s here for its 6 runs), and one
run at that size:
    python launch.py sweep --config experiments/ablate_blur_families.py:runlocal --root /tmp/ablate_families
    python launch.py train --config experiments/ablate_blur_families.py:runlocal --workdir /tmp/families_run

Results: docs/results-and-ablations.md#ablations (full size, three seeds: the table and figure).
"""
from jdeblur import config as cfglib

MOTION = ("linear_motion", "camera_shake")
# The training families of each point; every point is scored on each family of "all".
POINTS = {"gaussian": ("gaussian",), "motion": MOTION, "all": ("gaussian", *MOTION)}


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = cfglib.load_config("unet" if arg is None else "unet:runlocal")
    c.degrade.blur.families = POINTS["all"]
    c.degrade.blur.weights = (1.0,) * len(POINTS["all"])
    c.eval.blur_families = POINTS["all"]
    if arg == "runlocal":  # one evaluation, on one image (blurred by each family: three items)
        c.train.log_every = c.train.eval_every = c.train.checkpoint_every = c.train.steps
        c.eval.max_images = c.eval.samples = 1
        c.eval.noise_levels = c.eval.out_of_family = ()  # the U-Net's runlocal scores the grid
    return c


def get_sweep(arg=None):
    return dict(seeds=(0, 1, 2) if arg is None else (0, 1),
                zip={"degrade.blur.families": tuple(POINTS.values()),
                     "degrade.blur.weights": tuple((1.0,) * len(f) for f in POINTS.values())},
                labels=tuple(POINTS))
