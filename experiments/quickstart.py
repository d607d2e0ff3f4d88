"""Quickstart: blind deblurring through the physics, trained and evaluated in about 10 minutes here.

Goal: the default experiment (``python launch.py``), on a 2-core CPU with no download (the embedded
``skimage_images`` data): the best blind model measured, which is the two-stage model of
experiments/blind.py (the kernel found in the whole image by a search with nothing to learn, the
noise level estimated, then the unfolded non-blind network), at a size that fits the budget: fewer
training steps and one draw of each test photo per cell, since the search runs on every evaluated
image. The final tables compare, on full-size test photos the network never saw, the blurred input,
Wiener and Richardson-Lucy given the true kernel (non-blind), and the model (blind), by noise level
(0, 1% and training's 0-5%) and blur family, out-of-family kernels included, on the test and the
external photographs.

Source: no published figure. The baselines are given what the model is not, the true kernel
(Wiener with the best of six balances per image: an oracle), so "above Wiener" is a strict claim.
Target: at least 3 dB over the blurred input and above oracle Wiener at noise 1%, on the test,
external and out-of-family sets.

Run:
    python launch.py                                   # = the command below, into a fresh workdir
    python launch.py train --config experiments/quickstart.py --workdir runs/quickstart
    python launch.py train --config experiments/quickstart.py:runlocal --workdir /tmp/qs  # < 1 min

Results: docs/results-and-ablations.md#the-default-run-quickstart (gains by noise level and blur
family against oracle Wiener and the blind U-Net, experiments/unet.py, the previous default).
"""
from jdeblur.config import load_config


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = load_config("blind" if arg is None else "blind:runlocal")
    if arg is None:  # experiments/blind.py trains 600 steps and draws every test photo twice: ~14 min here
        c.train.steps = 400
        c.train.checkpoint_every = 200
        c.train.eval_every = 400
        c.eval.draws = 1
    return c
