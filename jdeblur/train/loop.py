"""``train_and_evaluate(config, workdir)``: the whole training run, resumable, as a library call.

Rerunning with the same config in the same workdir resumes from the latest checkpoint: the train
state and the input iterator's position are restored together, and degradations are a function
of (seed, step, image index), so the resumed run continues exactly as the uninterrupted one.

Random streams: ``config.seed`` is split once into ``init`` (parameters), ``data`` (order and
augmentation of the input pipeline) and ``step`` (degradations, folded with the step number in
the step function).
"""
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur import losses
from jdeblur.atomic import write_json
from jdeblur.data.datasets import PAIRED
from jdeblur.data.eval_set import make_eval_set
from jdeblur.data.pipeline import device_prefetch, make_train_loader
from jdeblur.models.registry import get_model
from jdeblur.physics.degrade import degrade, sharp_target
from jdeblur.train import evaluate as evaluation
from jdeblur.train import optim, parallel, provenance
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.logger import MetricLogger, plot_curves
from jdeblur.train.step import create_state, make_train_step

FINAL = "final.json"


def seed_streams(seed: int) -> dict:
    """The run's named random streams, split once from ``seed``."""
    init, data, step = jax.random.split(jax.random.key(seed), 3)
    data_seed = int(jax.random.randint(data, (), 0, 2**31 - 1))
    return {"init": init, "data": data_seed, "step": step}


def build_model(config):
    return get_model(config.model.name, variant=config.model.variant, **config.model.kwargs)


def is_paired(config) -> bool:
    return config.data.name in PAIRED


def input_margin(config) -> int:
    """Rows/columns of context around each patch that a 'valid' synthetic blur consumes."""
    if is_paired(config) or config.degrade.boundary != "valid":
        return 0
    return config.degrade.blur.size // 2


def make_prepare(config):
    """``prepare(keys, batch) -> (inputs, targets)`` on the device, one key per image."""
    if is_paired(config):
        def prepare_pairs(keys, batch):
            del keys
            return batch["blurred"].astype(jnp.float32) / 255.0, batch["sharp"].astype(jnp.float32) / 255.0

        return prepare_pairs
    degrade_cfg = config.degrade

    def prepare_synthetic(keys, batch):
        sharp = batch["sharp"].astype(jnp.float32) / 255.0
        # Per-image keys make each image's degradation independent of how the batch is split.
        blurred = jax.vmap(lambda k, x: degrade(k, x[None], degrade_cfg)[0][0])(keys, sharp)
        return blurred, sharp_target(sharp, degrade_cfg)

    return prepare_synthetic


def _init_params(config, model, key):
    size = config.data.patch_size
    return model.init(key, jnp.zeros((1, size, size, 3), jnp.float32))["params"]


def initial_state(config, model, tx, key):
    """The train state at step 0."""
    # Initialisation runs once: compile it without optimisation (10x faster to compile on CPU,
    # where XLA otherwise spends seconds per parameter array on the random-number kernels).
    init = jax.jit(lambda k: _init_params(config, model, k),
                   compiler_options={"xla_backend_optimization_level": 0})
    return create_state(init(key), tx, ema=config.train.ema_decay > 0)


def abstract_state(config, model, tx):
    """The shapes and dtypes of the train state, computed without running anything."""
    params = jax.eval_shape(lambda: _init_params(config, model, jax.random.key(0)))
    return jax.eval_shape(lambda p: create_state(p, tx, ema=config.train.ema_decay > 0), params)


def eval_params(state):
    return state["ema_params"] if "ema_params" in state else state["params"]


def train_and_evaluate(config, workdir, *, stop_after: int | None = None) -> dict | None:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints); returns the final results.

    Args:
      stop_after: end this invocation after that many steps in all (a checkpoint is saved there),
        e.g. to fit a cluster's time slot; rerunning continues. Returns None in that case.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    provenance.record_run(config, workdir)
    train_cfg, eval_cfg = config.train, config.eval

    mesh = parallel.make_mesh(train_cfg.num_devices)
    parallel.per_device_batch(train_cfg.global_batch, mesh)
    streams = seed_streams(config.seed)
    model = build_model(config)
    tx, schedule = optim.make_optimizer(config.optim, train_cfg.steps)
    step_fn = make_train_step(
        apply_fn=lambda params, x: model.apply({"params": params}, x),
        loss_fn=losses.make_loss(config.loss), tx=tx, schedule=schedule, prepare=make_prepare(config),
        microbatches=train_cfg.microbatches, ema_decay=train_cfg.ema_decay,
    )
    train_step = parallel.parallelize(step_fn, mesh, train_cfg.parallel)

    loader = make_train_loader(config.data, seed=streams["data"], global_batch=train_cfg.global_batch,
                               margin=input_margin(config))
    checkpoints = Checkpointer(workdir, keep=train_cfg.keep_checkpoints)
    start = checkpoints.latest_step()
    if start is not None:
        state, data_state = checkpoints.restore(start, abstract_state(config, model, tx), mesh)
        loader.set_state(data_state)
    else:
        start = 0
        state = parallel.replicate(initial_state(config, model, tx, streams["init"]), mesh)
    batches = device_prefetch(loader, mesh, size=config.data.device_prefetch, mode=train_cfg.parallel)

    items = make_eval_set(config.data, config.degrade, seed=config.seed, split=config.data.eval_split,
                          max_images=eval_cfg.max_images)
    convention = eval_cfg.convention
    baselines = evaluation.cached_baseline_scores(items, eval_cfg, convention, workdir / "baselines.json")

    logger = MetricLogger(workdir, total_steps=train_cfg.steps, initial_step=start,
                          progress=train_cfg.progress)
    if start:
        logger.write(f"resuming from step {start} in {workdir}")

    def run_evaluation(step):
        table, families, restored = evaluation.evaluate(model, eval_params(state), items, eval_cfg,
                                                        baselines=baselines, convention=convention)
        logger.evaluation(step, table, convention)
        if jax.process_index() == 0:
            evaluation.save_sample_grid(items, restored, workdir / "samples" / f"step_{step:07d}.png",
                                        count=eval_cfg.samples)
        return table, families

    pending, wait_s, interval_start = [], 0.0, time.perf_counter()
    table = families = None
    for step in range(start, train_cfg.steps):
        t0 = time.perf_counter()
        batch = next(batches)
        wait_s += time.perf_counter() - t0
        state, stats = train_step(state, batch, streams["step"])
        pending.append(stats)
        done = step + 1
        last = done == train_cfg.steps
        if done % train_cfg.log_every == 0 or last:
            # One transfer per logging interval: the device runs ahead between them.
            fetched = jax.device_get(pending)
            elapsed = time.perf_counter() - interval_start
            values = {k: float(np.mean([f[k] for f in fetched])) for k in fetched[-1]}
            values["lr"] = float(fetched[-1]["lr"])
            values["images_per_s"] = len(fetched) * train_cfg.global_batch / elapsed
            values["data_wait_fraction"] = wait_s / elapsed
            if not np.isfinite(values["loss"]):
                raise FloatingPointError(
                    f"non-finite loss {values['loss']} at step {done}; the last good checkpoint is kept "
                    f"(step {checkpoints.latest_step()}) in {workdir}")
            logger.train(done, values)
            pending, wait_s, interval_start = [], 0.0, time.perf_counter()
        if done % train_cfg.eval_every == 0 or last:
            table, families = run_evaluation(done)
            checkpoints.save(done, state, batches.get_state(), metrics=table["model"])
            interval_start = time.perf_counter()  # evaluation time is not training throughput
        elif done % train_cfg.checkpoint_every == 0 or done == stop_after:
            checkpoints.save(done, state, batches.get_state())
        if done == stop_after and not last:
            checkpoints.close()
            logger.close()
            return None
    if table is None:  # resumed a finished run: evaluate what is there
        table, families = run_evaluation(train_cfg.steps)
    checkpoints.close()
    final = {"step": train_cfg.steps, "convention": convention, "results": table, "by_family": families,
             "split": config.data.eval_split, "splits": {}}
    for split in eval_cfg.final_splits:
        extra = make_eval_set(config.data, config.degrade, seed=config.seed, split=split)
        extra_baselines = evaluation.cached_baseline_scores(extra, eval_cfg, convention,
                                                            workdir / f"baselines_{split}.json")
        final["splits"][split] = evaluation.evaluate(model, eval_params(state), extra, eval_cfg,
                                                     baselines=extra_baselines, convention=convention)[0]
        logger.write(f"split {split}: " + ", ".join(
            f"{m} {v['psnr']:.2f} dB" for m, v in final["splits"][split].items()))
    logger.close()
    if jax.process_index() == 0:
        plot_curves(workdir)
        write_json(workdir / FINAL, final, indent=1)
    return final
