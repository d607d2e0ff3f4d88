"""The full experiment config schema with its defaults; every experiment starts from ``base_config()``.

Sections: ``seed``; ``model`` (registry name, variant, keyword overrides); ``data`` (the dataset
and input pipeline, ``jdeblur.data.pipeline``); ``degrade`` (synthetic blur and noise applied in
the train step, ``jdeblur.physics.degrade``); ``loss`` (weights of the named losses,
``jdeblur.losses``; 0 switches a term off); ``optim`` (``jdeblur.train.optim``); ``train``; ``eval``.
"""
import ml_collections

from jdeblur.data.pipeline import default_data_config
from jdeblur.losses import LOSSES
from jdeblur.physics.degrade import default_degrade_config
from jdeblur.train.optim import default_optim_config


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(name="unet", variant="small", kwargs=ml_collections.ConfigDict()))
    c.data = default_data_config()
    c.degrade = default_degrade_config()
    c.loss = ml_collections.ConfigDict({name: 0.0 for name in LOSSES})
    c.loss.charbonnier = 1.0
    c.optim = default_optim_config()
    c.train = ml_collections.ConfigDict(dict(
        steps=1000,
        global_batch=16,       # the experiment's contract: same on 1 or 64 devices
        microbatches=1,        # split each device's share when it does not fit at once
        parallel="shard_map",  # or 'pmap': the same step function under the other wrapper
        num_devices=None,      # None: every device of every process
        ema_decay=0.0,         # > 0 keeps an average of the parameters, used for evaluation
        nonfinite="stop",      # a NaN/Inf loss or gradient: 'stop' (keeping the last good checkpoint)
                               # or 'skip' that update (counted in metrics.jsonl as skipped_steps)
        log_every=50,
        eval_every=500,
        checkpoint_every=250,
        keep_checkpoints=2,    # the latest ones; the best by eval PSNR is kept besides
        progress=True,
    ))
    c.eval = ml_collections.ConfigDict(dict(
        convention="default",  # a jdeblur.metrics.CONVENTIONS name; every table names it
        max_images=None,       # None: the whole test split
        final_splits=(),       # further splits scored once at the end (e.g. 'external')
        # Non-empty: score every synthetic test image (``draws`` times) under each of these blur
        # families (kernel_mixture.FAMILIES), whatever the training mixture; by_family covers them all.
        blur_families=(),
        # The degradations of the synthetic eval set are drawn from this seed, not the experiment's:
        # every seed of a sweep is scored on the same inputs, so the spread over seeds is the
        # training's alone. (Workdirs made before this field drew them from the experiment's seed.)
        seed=0,
        draws=1,               # degradations of each test image (per family); more: a steadier mean
        max_pixels=1024 * 1024,  # per model call; larger images are tiled
        overlap=64,
        ensemble=False,
        samples=4,             # rows of the blurred | restored | sharp grid saved per evaluation
        wiener_balances=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
        rl_iterations=30,
    ))
    return c
