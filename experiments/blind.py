"""Blind deblurring through the physics: a kernel fitted to the whole image, then unfolded deconvolution.

Goal: blind deblurring that uses the imaging model (``jdeblur.models.blind_unfolded``): a U-Net
makes a sharp estimate, the kernel is the least-squares fit of the blurred image by the kernel
times that estimate over the whole frame (a uniform blur is a global property, which a local CNN
cannot see), made a valid kernel, and the non-blind unfolded model (experiments/nonblind.py)
deconvolves with it and the noise level estimated from the image. Trained end to end, the kernel
supervised by the true kernels of the synthetic training data (``loss.kernel_l1``) and the
estimate by the sharp image (``loss.sharp_estimate_l1``); as Schuler et al., "Learning to deblur"
(TPAMI 2016), with the kernel step of Cho & Lee (SIGGRAPH Asia 2009).

Source: no published figure on these photographs; the references are the blurred input, the oracle
Wiener filter given the true kernel, and the quickstart's blind U-Net, in the same kind of run.
Target: at least 3 dB over the blurred input and above oracle Wiener at noise 1%, on the test,
external and out-of-family sets, within 10 minutes here; and better than the blind U-Net.

Run:
    python launch.py train --config experiments/blind.py --workdir runs/blind
    python launch.py train --config experiments/blind.py:runlocal --workdir /tmp/blind  # < 1 min

Results: docs/results-and-ablations.md#blind-deblurring-through-the-physics (it does not meet the
target, and is not the default experiment: the measurements are there).
"""
from jdeblur.config import load_config


def get_config(arg=None):
    c = load_config("nonblind" if arg is None else f"nonblind:{arg}")
    c.model.name = "blind_unfolded"
    c.model.kwargs = {}
    c.loss.kernel_l1 = 0.05
    c.loss.sharp_estimate_l1 = 0.5
    if arg is None:
        c.model.variant = "small"
        c.data.patch_size = 64  # a kernel is fitted to each patch: 32x32 holds too little evidence
        c.train.global_batch = 8
        c.train.steps = 350  # what fits 10 minutes here (1.8x the non-blind step; 1500 steps: docs)
        c.train.checkpoint_every = 350
        c.train.eval_every = 350
    else:  # the blind model's programs compile slowly: one evaluation, on one photograph, no grid
        c.model.variant = "tiny"
        c.eval.noise_levels = ()  # (the non-blind runlocal covers the noise-by-family grid)
        c.eval.out_of_family = ()
        c.train.steps = 4
        c.train.log_every = 2
        c.train.eval_every = 4
        c.train.checkpoint_every = 4
        c.eval.max_images = 1
        c.eval.samples = 1
    return c
