"""Blind deblurring through the physics: the kernel found in the whole image, then learned deconvolution.

Goal: blind deblurring that uses the imaging model, in two stages (``jdeblur.models.two_stage``).
A uniform blur is a global property of the image, which a local CNN cannot see: the kernel is
found by a coarse-to-fine search over the whole frame that alternates an L0-gradient latent image
with a least-squares kernel (``jdeblur.physics.blind_kernel``: Xu et al. CVPR 2013, Pan et al.
CVPR 2014, Cho & Lee SIGGRAPH Asia 2009), the noise level by the wavelet estimator, and the
non-blind unfolded model deconvolves with them. The search has no parameters, so training is the
non-blind experiment's (experiments/nonblind.py: the same data, steps and seed).

The variant ``learned`` is the first attempt, kept for its measurements
(``jdeblur.models.blind_unfolded``): a U-Net's sharp estimate, the least-squares kernel fitted to
it, the unfolded model, trained end to end with the kernel supervised by the true ones
(``loss.kernel_l1``) and the estimate by the sharp image (``loss.sharp_estimate_l1``), as
Schuler et al., "Learning to deblur" (TPAMI 2016).

Source: no published figure on these photographs; the references are the blurred input, the oracle
Wiener filter given the true kernel, and the quickstart's blind U-Net, in the same kind of run.
Target: at least 3 dB over the blurred input and above oracle Wiener at noise 1%, on the test,
external and out-of-family sets, within 10 minutes here; and better than the blind U-Net.

Run:
    python launch.py train --config experiments/blind.py --workdir runs/blind
    python launch.py train --config experiments/blind.py:runlocal --workdir /tmp/blind  # < 1 min
    python launch.py train --config experiments/blind.py:learned --workdir runs/blind_learned

Results: docs/results-and-ablations.md#blind-deblurring-through-the-physics (gains by noise level
and blur family against the U-Net and oracle Wiener; the learned variant's too).
"""
from jdeblur.config import load_config


def get_config(arg=None):
    if arg not in (None, "runlocal", "learned"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal, learned or nothing")
    c = load_config("nonblind:runlocal" if arg == "runlocal" else "nonblind")
    c.model.kwargs = {}
    if arg == "learned":
        c.model.name = "blind_unfolded"
        c.model.variant = "small"
        c.loss.kernel_l1 = 0.05
        c.loss.sharp_estimate_l1 = 0.5
        c.data.patch_size = 64  # a kernel is fitted to each patch: 32x32 holds too little evidence
        c.train.global_batch = 8
        c.train.steps = 350  # what fits 10 minutes here (1.8x the non-blind step; 1500 steps: docs)
        c.train.checkpoint_every = 350
        c.train.eval_every = 350
        return c
    c.model.name = "two_stage"
    c.model.variant = "small" if arg is None else "tiny"
    if arg == "runlocal":  # the search compiles once per image shape: one photograph, no grid
        c.eval.noise_levels = ()  # (the non-blind runlocal covers the noise-by-family grid)
        c.eval.out_of_family = ()
        c.eval.max_images = 1
        c.eval.samples = 1
    return c
