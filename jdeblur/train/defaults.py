"""The experiment config: every field with its default (``base_config()``), and its checks (``validate``).

Every experiment starts from ``base_config()`` and sets only what differs. Each field's default and
meaning is written in one place, beside the line that sets it (tests/train/test_defaults.py checks
that every field has a comment or a docstring entry):

- ``seed``, ``model``, ``loss``, ``train``, ``eval``: ``base_config`` below. ``model.kwargs`` takes
  fields of the model class: the Attributes of ``jdeblur.models.unet.UNet`` and
  ``jdeblur.models.nafnet.NAFNet``, whose presets are their modules' ``VARIANTS``;
- ``data``: ``jdeblur.data.pipeline.default_data_config``; ``data.dead_leaves``:
  ``jdeblur.data.dead_leaves.default_config``;
- ``degrade``: ``jdeblur.physics.degrade.default_degrade_config``; ``degrade.blur``:
  ``jdeblur.physics.kernel_mixture.default_blur_config`` (its docstring, field by field);
- ``optim``: ``jdeblur.train.optim.default_optim_config`` (and the module's docstring).

``validate(config)`` checks every section in the module that owns it (``check_*_config`` there;
``config.train`` here), before anything is written; ``train_and_evaluate``, ``launch.py`` and
sweeps call it.
"""
import ml_collections

from jdeblur import losses
from jdeblur.checks import check_choice, check_positive
from jdeblur.data import pipeline
from jdeblur.data.datasets import PAIRED
from jdeblur.errors import UserError
from jdeblur.models import registry
from jdeblur.physics import degrade
from jdeblur.train import evaluate, gains, init_from, optim, parallel, step


def base_config() -> ml_collections.ConfigDict:
    """The default experiment config; the module docstring says where each section's fields are documented."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # the one seed: split into the init, data and step streams (jdeblur.train.loop)
    c.model = ml_collections.ConfigDict(dict(
        name="unet",       # a module of jdeblur/models (models.list_models()): 'unet', 'nafnet',
                           # 'unfolded' (non-blind), 'blind_unfolded', 'two_stage'
        variant="small",   # one of the model's VARIANTS presets; None: the class defaults
        kwargs=ml_collections.ConfigDict(),  # fields of the model class overriding the variant's
    ))
    c.data = pipeline.default_data_config()
    c.degrade = degrade.default_degrade_config()
    # loss.NAME: the weight of each of losses.LOSSES (l1, mse, charbonnier, psnr, ssim, ms_ssim,
    # fft_l1) in the training loss, and of losses.ESTIMATE_LOSSES (kernel_l1, sharp_estimate_l1:
    # what a blind unfolded model estimates on the way); 0 switches a term off. Default: Charbonnier.
    c.loss = ml_collections.ConfigDict({name: 0.0 for name in {**losses.LOSSES, **losses.ESTIMATE_LOSSES}})
    c.loss.charbonnier = 1.0
    c.optim = optim.default_optim_config()
    c.train = ml_collections.ConfigDict(dict(
        steps=1000,            # optimizer updates in all (the schedules span them)
        global_batch=16,       # the experiment's contract: same on 1 or 64 devices
        microbatches=1,        # split each device's share when it does not fit at once
        parallel="shard_map",  # or 'pmap': the same step function under the other wrapper
        num_devices=None,      # None: every device of every process
        ema_decay=0.0,         # > 0 keeps an average of the parameters, used for evaluation
        init_from=None,        # a workdir (trained or import-weights): start from its parameters,
                               # with a fresh optimizer (jdeblur.train.init_from)
        nonfinite="stop",      # a NaN/Inf loss or gradient: 'stop' (keeping the last good checkpoint)
                               # or 'skip' that update (counted in metrics.jsonl as skipped_steps)
        log_every=50,          # steps between lines of metrics.jsonl (means over the interval)
        eval_every=500,        # steps between evaluations (eval.jsonl, samples/); the last step is evaluated
        checkpoint_every=250,  # steps between checkpoints (and at every evaluation)
        keep_checkpoints=2,    # the latest ones; the best by eval PSNR is kept besides
        progress=True,         # a progress bar on stderr
    ))
    c.eval = ml_collections.ConfigDict(dict(
        convention="default",  # a jdeblur.metrics.CONVENTIONS name; every table names it
        max_images=None,       # None: the whole test split
        crop=None,             # an int: score each test image's central crop x crop pixels (runlocal's
                               # quick check; jdeblur.data.eval_set); None: the whole images
        final_splits=(),       # further splits scored once at the end (e.g. 'external')
        # Non-empty: score every synthetic test image (``draws`` times) under each of these blur
        # families (kernel_mixture.FAMILIES), whatever the training mixture; by_family covers them all.
        blur_families=(),
        # The degradations of the synthetic eval set are drawn from this seed, not the experiment's:
        # every seed of a sweep is scored on the same inputs, so the spread over seeds is the
        # training's alone. (Workdirs made before this field drew them from the experiment's seed.)
        seed=0,
        draws=1,               # degradations of each test image (per family); more: a steadier mean
        # Deblurring, not denoising (jdeblur.train.gains): at the end of training, every test image is
        # also scored under each family at these fixed noise levels (same kernels at every level),
        # and under these families that training never draws from; final.json's by_noise.
        noise_levels=(),       # e.g. (0.0, 0.01)
        out_of_family=(),      # e.g. ('disk', 'gp_motion'); must not be among degrade.blur.families
        max_pixels=1024 * 1024,  # per model call; larger images are tiled
        overlap=64,            # pixels shared by neighbouring tiles
        ensemble=False,        # average over the 8 flips and rotations (8x the time)
        pad="reflect",         # to the model's size multiple: 'reflect', or 'zero' as the official NAFNet
        samples=4,             # rows of the blurred | restored | sharp grid saved per evaluation
        wiener_balances=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),  # the Wiener baseline's, best per image
        rl_iterations=30,      # of the Richardson-Lucy baseline
    ))
    return c


def check_train_config(train_cfg) -> None:
    """Raises UserError, naming the field, unless ``config.train`` can run on this run's devices."""
    for field in ("steps", "global_batch", "microbatches", "log_every", "eval_every", "checkpoint_every"):
        check_positive(train_cfg[field], f"config.train.{field}")
    check_positive(train_cfg.keep_checkpoints, "config.train.keep_checkpoints")
    check_choice(train_cfg.parallel, "config.train.parallel", parallel.MODES)
    check_choice(train_cfg.nonfinite, "config.train.nonfinite", step.NONFINITE_MODES)
    if not 0.0 <= train_cfg.ema_decay < 1.0:
        raise UserError(f"config.train.ema_decay={train_cfg.ema_decay!r}: expected a value in [0, 1)")
    per_device = parallel.per_device_batch(train_cfg.global_batch, parallel.make_mesh(train_cfg.num_devices))
    if per_device % train_cfg.microbatches:
        raise UserError(f"config.train.microbatches={train_cfg.microbatches}: expected a divisor of the "
                        f"per-device batch {per_device}")


def validate(config) -> None:
    """Raises UserError, naming the field and what it expects, for a config that training would fail on.

    Each section is checked by the module that owns it, by building what training builds first
    (cheaply: the model and the degradation are traced with ``jax.eval_shape``, no image is read):
    the model (``models.registry``), the data (``data.pipeline``), the train settings (here), the
    loss (``losses``), the optimizer (``train.optim``), the degradation (``physics.degrade``) and
    the evaluation (``train.evaluate``). Nothing is written. ``train_and_evaluate``, ``launch.py``
    and sweeps call it before they write anything.
    """
    registry.check_model_config(config.model)
    model = registry.build_model(config.model)
    pipeline.check_data_config(config.data, size_multiple=model.size_multiple)
    check_train_config(config.train)
    init_from.check_init_from(config, model)
    losses.check_loss_config(config.loss)
    optim.check_optim_config(config.optim)
    if config.data.name not in PAIRED:  # real pairs are not degraded
        degrade.check_degrade_config(config.degrade, patch_size=config.data.patch_size)
    evaluate.check_eval_config(config.eval)
    if config.data.name not in PAIRED:
        gains.check_eval_grid(config)
    _check_model_fits_data(config, model)


def _check_model_fits_data(config, model) -> None:
    """A non-blind model needs synthetic blur (true kernels); an estimate loss, a model that makes it."""
    if "kernel" in registry.model_inputs(model, training=True) and config.data.name in PAIRED:
        raise UserError(f"config.model.name={config.model.name!r}: this model is trained on each image's "
                        f"kernel, which real pairs ({config.data.name}) do not have; expected synthetic blur")
    for name, weight in config.loss.items():
        if not weight or name not in losses.ESTIMATE_LOSSES:
            continue
        estimate, target = losses.ESTIMATE_LOSSES[name][1:]
        if estimate not in registry.model_estimates(model):
            raise UserError(f"config.loss.{name}={weight}: {config.model.name} makes no {estimate} to score; "
                            f"expected 0, or a model that estimates one (blind_unfolded)")
        if target == "kernel" and config.data.name in PAIRED:
            raise UserError(f"config.loss.{name}={weight}: real pairs ({config.data.name}) have no true "
                            "kernels; expected 0")
