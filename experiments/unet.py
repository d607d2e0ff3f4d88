"""U-Net: a U-Net learns blind deblurring of synthetic motion and Gaussian blur with noise.

Goal: blind deblurring learned by a plain network, trained and evaluated on a 2-core CPU in at most
10 minutes with no download (the embedded ``skimage_images`` data). The default experiment until
2026-12-03 (then ``quickstart``; the two-stage model of experiments/blind.py deblurs more and is the
default now), kept as the learned blind baseline: its data, kernels and evaluation are those of
every other experiment here. The final table compares, on full-size test photos the network never
saw, the blurred input, Wiener and Richardson-Lucy with the true kernel (non-blind), and the U-Net
(blind); every test photo is scored four times under each blur family.

Source: no published figure. The baselines are given what the network is not, the true kernel
(Wiener with the best of six balances per image: an oracle), so "above Wiener" is a strict claim.
Target: the U-Net 3 dB above the blurred input and above Wiener with the true kernel (missed:
its gain is mostly denoising; docs/results-and-ablations.md).

Run:
    python launch.py train --config experiments/unet.py --workdir runs/unet
    python launch.py train --config experiments/unet.py:runlocal --workdir /tmp/unet  # < 1 min

Results: docs/results-and-ablations.md: the full run (5 min 44 s here; model 27.55 dB against 24.90
dB for the input and 27.61 dB for oracle Wiener on the test split), and how each setting below was
chosen, with the command that measured it.
"""
from jdeblur.train.defaults import base_config


def get_config(arg=None):
    c = base_config()
    c.seed = 0
    c.model.name = "unet"
    c.model.variant = "small"
    # Plain convolutions and ReLU: 1.4x the throughput of LayerNorm + GELU on this CPU
    # (27 against 20 images/s), and throughput is what a 10-minute budget buys.
    c.model.kwargs = dict(norm="none", activation="relu", upsample="transpose")

    c.data.name = "skimage_images"
    c.data.patch_size = 32  # more, smaller patches (docs/results-and-ablations.md)

    c.degrade.blur.size = 19
    c.degrade.blur.families = ("gaussian", "linear_motion", "camera_shake")
    c.degrade.blur.weights = (1.0, 1.0, 1.0)
    c.degrade.blur.gaussian.sigma = (0.8, 2.5)
    c.degrade.blur.linear_motion.length = (5.0, 17.0)
    c.degrade.blur.camera_shake.max_length = (5.0, 17.0)
    c.degrade.noise.kind = "gaussian"
    c.degrade.noise.sigma = (0.01, 0.05)

    c.loss.charbonnier = 1.0
    c.optim.lr = 3e-3
    c.optim.warmup_steps = 50
    c.optim.final_lr = 1e-6
    c.train.steps = 3000
    c.train.global_batch = 16
    c.train.log_every = 100
    c.train.eval_every = 3000
    c.train.checkpoint_every = 1000
    c.train.ema_decay = 0.0
    c.eval.final_splits = ("external",)
    c.eval.blur_families = c.degrade.blur.families  # each test photo under each family,
    c.eval.draws = 4  # four times: one draw's mean depends on the eval seed by +-0.7 dB
    # Deblurring apart from denoising: the same kernels at noise 0 and 1% too, and defocus and
    # Gaussian-process motion, which training never draws (jdeblur.train.gains).
    c.eval.noise_levels = (0.0, 0.01)
    c.eval.out_of_family = ("disk", "gp_motion")

    if arg == "runlocal":
        c.model.variant = "tiny"
        c.eval.final_splits = ()
        c.eval.blur_families = ()
        c.eval.draws = 1
        c.eval.noise_levels = (0.01,)
        c.eval.out_of_family = ("disk",)
        c.degrade.blur.disk.radius = (1.0, 4.0)
        c.data.patch_size = 32
        c.degrade.blur.size = 9
        c.degrade.blur.gaussian.sigma = (0.5, 1.5)
        c.degrade.blur.linear_motion.length = (3.0, 8.0)
        c.train.steps = 12
        c.train.global_batch = 8
        c.train.log_every = 4
        c.train.eval_every = 6
        c.train.checkpoint_every = 4
        c.optim.warmup_steps = 2
        c.eval.max_images = 2
        c.eval.crop = 128  # each photo's central 128x128: one shape, so each program compiles once
        c.eval.samples = 2
        c.eval.wiener_balances = (1e-2,)
        c.eval.rl_iterations = 5
    elif arg is not None:
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    return c
