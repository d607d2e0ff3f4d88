"""Tiny sweep: the smallest two-point, two-seed ablation, for testing the sweep and report machinery.

Goal: exercise ``launch.py sweep`` and ``launch.py report`` end to end in about a minute: the
U-Net experiment's ``runlocal`` (12 steps) evaluated once, trained with and without flips and
rotations, two seeds each. The numbers it reports mean nothing; the files and the table's form
are what it tests.

Run:
    python launch.py sweep --config experiments/tiny_sweep.py --root runs/tiny_sweep
    python launch.py sweep --config experiments/tiny_sweep.py --root runs/tiny_sweep --dry-run
    python launch.py report --root runs/tiny_sweep

Results: none to read; the tests run it (tests/test_launch.py).
"""
from jdeblur import config as cfglib


def get_config(arg=None):
    if arg is not None:
        raise ValueError(f"unknown variant {arg!r}; tiny_sweep has none")
    c = cfglib.load_config("unet:runlocal")
    # The same steps and schedule as runlocal, so that the train step is the program runlocal
    # compiled (a JAX compilation cache then serves it); one evaluation only.
    c.train.log_every = c.train.steps
    c.train.eval_every = c.train.steps
    c.train.checkpoint_every = c.train.steps
    c.eval.max_images = 1
    c.eval.samples = 1
    return c


def get_sweep(arg=None):
    # Augmentation runs on the host, so both points train with the same compiled programs.
    return dict(seeds=(0, 1), zip={"data.augment.flips": (True, False), "data.augment.rotations": (True, False)},
                labels=("augmented", "plain"))
