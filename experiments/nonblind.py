"""Non-blind deconvolution: an unfolded HQS network, exact data steps and a learned prior.

Goal: deblur when the kernel is known (a microscope's or telescope's PSF, a calibrated lens,
gyroscope-measured shake), trained end to end on this machine's CPU in at most 10 minutes from the
embedded photographs. The model (``jdeblur.models.unfolded``) alternates the exact data step of
the imaging model (``jdeblur.physics.proximal``: the photograph is a 'valid' observation of a
larger scene, solved by conjugate gradients preconditioned by the circular closed form) with a
U-Net prior told its noise level, for 4 stages, as deep unfolding (USRNet, Zhang et al. CVPR 2020)
and plug-and-play restoration (DPIR, Zhang et al. TPAMI 2021) do. Training draws the U-Net experiment's
kernels (Gaussian, linear motion, camera shake up to 19 px) and noise sigma 0-5%.

Source: no published figure on these photographs; the reference is the oracle Wiener filter
(given the true kernel and the best of six balances per image), in the same run.
Target: at least 2 dB above oracle Wiener at noise 1% on the test and external photographs, in
every blur family, the out-of-family ones (defocus disk, Gaussian-process motion) included.

Run:
    python launch.py train --config experiments/nonblind.py --workdir runs/nonblind
    python launch.py train --config experiments/nonblind.py:runlocal --workdir /tmp/nb  # < 1 min
    python launch.py eval --workdir runs/nonblind --config.model.kwargs="{'stages': 8}"  # plug-and-play
    python launch.py deblur --workdir runs/nonblind --input photos/ --output out/ --kernel psf.png

Results: docs/results-and-ablations.md#non-blind-deconvolution (gains by noise level and blur
family, the longer run, plug-and-play with more stages).
"""
from jdeblur.config import load_config


def get_config(arg=None):
    if arg not in (None, "runlocal"):
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    c = load_config("unet" if arg is None else "unet:runlocal")  # its data, kernels, eval
    c.model.name = "unfolded"
    c.model.variant = "small" if arg is None else "tiny"
    c.model.kwargs = {}
    c.degrade.noise.sigma = (0.0, 0.05)  # noise-free images too: the gains at sigma 0 are scored
    if arg is None:
        c.train.steps = 600  # what fits 10 minutes here (1500 steps: docs/results-and-ablations.md)
        c.train.checkpoint_every = 300
        c.train.eval_every = 600
        c.eval.draws = 2
    else:  # one evaluation, at the end, of one photograph (the U-Net's runlocal: two, of all)
        c.train.steps = c.train.eval_every = c.train.checkpoint_every = 4
        c.train.log_every = 2
        c.eval.max_images = c.eval.samples = 1
    return c
