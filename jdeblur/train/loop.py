"""``train_and_evaluate(config, workdir)``: the whole training run, resumable, as a library call.

Rerunning with the same config in the same workdir resumes from the latest checkpoint: the train
state and the input iterator's position are restored together, and degradations are a function
of (seed, step, image index), so the resumed run continues exactly as the uninterrupted one.
A new run starts from random parameters, or from another workdir's with ``train.init_from``
(``jdeblur.train.init_from``).

Random streams: ``config.seed`` is split once into ``init`` (parameters), ``data`` (order and
augmentation of the input pipeline) and ``step`` (degradations, folded with the step number in
the step function).

Crashes: checkpoints are verified on restore (``jdeblur.train.checkpoint``); a corrupt newest one
is set aside and the previous one used. Records that the logs hold past the restored step (from
the lost part of a killed run) are dropped, and a checkpoint between two log steps carries the
interval's per-step measurements so far, so the logs of a resumed run read as those of an
uninterrupted one, whatever step the checkpoint is on. ``JDEBLUR_FAULT`` kills the process at a
chosen point, for the tests (``fault_hook``).

Non-finite values: the step reports per step whether its loss and gradients were finite; the loop
fetches those flags with the other metrics at each logging interval (and before every save and
evaluation), so it names the first bad step exactly without a host sync per step. Then
``train.nonfinite='stop'`` ends the run, keeping the last good checkpoint (the bad state is never
saved), and ``'skip'`` (the step left the state unchanged) logs and counts the skipped steps.
"""
import functools
import json
import os
import pathlib
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jdeblur import losses
from jdeblur.atomic import write_json, write_text
from jdeblur.data import dead_leaves
from jdeblur.data.datasets import PAIRED
from jdeblur.data.pipeline import DevicePrefetchIterator, make_batches
from jdeblur.errors import RunFailed, UserError
from jdeblur.models.registry import apply_model, build_model
from jdeblur.physics.degrade import SHARP_STREAM, degrade, sharp_target, valid_margin
from jdeblur.train import evaluate as evaluation
from jdeblur.train import gains, init_from, optim, parallel, provenance, workdir_lock
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.defaults import validate
from jdeblur.train.logger import MetricLogger, plot_curves, read_jsonl
from jdeblur.train.state import abstract_state, create_state, eval_params, initial_state
from jdeblur.train.step import make_train_step
from jdeblur.workdir import FINAL

FAULT_ENV = "JDEBLUR_FAULT"


class NonFiniteError(RunFailed, FloatingPointError):
    """Training met a non-finite loss or gradient (``train.nonfinite='stop'``)."""


def fault_hook(point: str, step: int) -> None:
    """Test-only fault injection: SIGKILLs this process at ``point`` of ``step`` when the environment
    holds ``JDEBLUR_FAULT=POINT:STEP``.

    Points: ``kill_after_step`` (the step dispatched, its computation under way) and
    ``kill_during_save`` (the step's asynchronous checkpoint save started, not yet committed).
    Unset, it costs an environment look-up per step. Used by tests/test_launch.py (kill and resume).
    """
    if os.environ.get(FAULT_ENV) == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def build_train_step(config, mesh, model, tx, schedule, *, prepare=None):
    """The experiment's train step over ``mesh`` (jitted, state donated), as the trainer runs it.

    ``prepare`` replaces the config's (on-device degradation, or the pairs' conversion): the
    benchmarks time the step without degradation that way.
    """
    step_fn = make_train_step(
        apply_fn=lambda params, inputs: apply_model(model, params, inputs, training=True),
        loss_fn=losses.make_loss(config.loss), tx=tx, schedule=schedule,
        prepare=prepare or make_prepare(config), microbatches=config.train.microbatches,
        ema_decay=config.train.ema_decay, skip_nonfinite=config.train.nonfinite == "skip",
    )
    return parallel.parallelize(step_fn, mesh, config.train.parallel)


def device_prefetch(iterator, mesh, *, size: int = 2, mode: str = "shard_map") -> DevicePrefetchIterator:
    """Places each host batch on ``mesh``'s devices, sharded over ``data``, ``size`` batches ahead.

    ``mode`` is the step wrapper's (``'shard_map'``: global arrays sharded ``P('data')``, from each
    process's local rows with ``jax.make_array_from_process_local_data`` when there are several;
    ``'pmap'``: local arrays reshaped to ``(local devices, per device, ...)``).
    """
    return DevicePrefetchIterator(iterator, functools.partial(parallel.place_batch, mesh=mesh, mode=mode), size)


def forget_records_after(path: pathlib.Path, step: int) -> None:
    """Drops the records of steps after ``step`` from a JSON-lines log, and a last line a kill tore."""
    if path.is_file():
        write_text(path, "".join(json.dumps(r) + "\n" for r in read_jsonl(path) if r["step"] <= step))


def nonfinite_steps(stats: list[dict], last_step: int) -> list[int]:
    """The steps whose loss or gradients were not finite, of per-step ``stats`` ending at ``last_step``."""
    first = last_step - len(stats) + 1
    return [first + i for i, s in enumerate(stats) if not s["finite"]]


def interval_record(pending: list[dict]) -> dict:
    """The logging interval in progress (host per-step measurements) as JSON data for a checkpoint.

    The values keep their dtypes (float32 values are exact as JSON's float64), so a resumed run
    averages the same numbers as the uninterrupted one, bit for bit.
    """
    dtypes = {k: str(np.asarray(v).dtype) for k, v in pending[0].items()} if pending else {}
    return {"steps": [{k: np.asarray(v).item() for k, v in s.items()} for s in pending], "dtypes": dtypes}


def interval_from_record(record: dict) -> list[dict]:
    """The per-step measurements ``interval_record`` saved (none for a checkpoint saved without them)."""
    dtypes = record.get("dtypes", {})
    return [{k: np.asarray(v, dtypes[k]) for k, v in s.items()} for s in record.get("steps", [])]


def interval_metrics(stats: list[dict]) -> dict:
    """Means of the per-step metrics over an interval (of its finite steps, when it has any)."""
    finite = [s for s in stats if s["finite"]] or stats
    values = {k: float(np.mean([s[k] for s in finite])) for k in finite[-1] if k != "finite"}
    values["lr"] = float(stats[-1]["lr"])
    return values


def seed_streams(seed: int) -> dict:
    """The run's named random streams, split once from ``seed``."""
    init, data, step = jax.random.split(jax.random.key(seed), 3)
    data_seed = int(jax.random.randint(data, (), 0, 2**31 - 1))
    return {"init": init, "data": data_seed, "step": step}


def is_paired(config) -> bool:
    return config.data.name in PAIRED


def input_margin(config) -> int:
    """Rows/columns of context around each patch that a 'valid' synthetic blur consumes."""
    return 0 if is_paired(config) else valid_margin(config.degrade)


def make_prepare(config):
    """``prepare(keys, batch) -> (inputs, targets)`` on the device, one key per image.

    ``inputs`` holds the observations (``'blurred'``, and for synthetic blur the true ``'kernel'``
    and ``'noise_sigma'``, which non-blind models take); ``targets`` the sharp ``'image'`` (and
    the true ``'kernel'``, which kernel losses compare a blind model's estimate with).
    """
    if is_paired(config):
        def prepare_pairs(keys, batch):
            del keys
            return ({"blurred": batch["blurred"].astype(jnp.float32) / 255.0},
                    {"image": batch["sharp"].astype(jnp.float32) / 255.0})

        return prepare_pairs
    degrade_cfg = config.degrade

    leaves = config.data.dead_leaves.to_dict()
    leaves_fraction = leaves.pop("fraction")

    def prepare_synthetic(keys, batch):
        sharp = batch["sharp"].astype(jnp.float32) / 255.0
        if leaves_fraction:
            sharp = jax.vmap(lambda k, x: dead_leaves.substitute(
                jax.random.fold_in(k, SHARP_STREAM), x, fraction=leaves_fraction, **leaves))(keys, sharp)
        # Per-image keys make each image's degradation independent of how the batch is split.
        blurred, kernel, noise_sigma = jax.vmap(
            lambda k, x: jax.tree.map(lambda a: a[0], degrade(k, x[None], degrade_cfg)))(keys, sharp)
        inputs = {"blurred": blurred, "kernel": kernel, "noise_sigma": noise_sigma}
        return inputs, {"image": sharp_target(sharp, degrade_cfg), "kernel": kernel}

    return prepare_synthetic


def _score_gains(config, model, params, split, workdir, logger) -> dict:
    """The noise-by-family grid of ``split`` (``jdeblur.train.gains``), written as ``gains_<split>.md``."""
    convention = config.eval.convention
    # The images the split's own evaluation scores: eval.max_images of the eval split, all of a final split.
    max_images = config.eval.max_images if split == config.data.eval_split else None
    grid = evaluation.make_grid_items(config, split, max_images)
    logger.write(f"scoring split {split} by noise level and blur family ({len(grid)} cells)")
    by_noise = evaluation.score_grid(model, params, grid, config, convention=convention,
                                     cache_dir=workdir / "baselines_grid" / f"{split}_{convention}")
    if jax.process_index() == 0:
        write_text(workdir / f"gains_{split}.md", gains.format_gains(
            by_noise, config, convention=convention, model=gains.model_label(model),
            title=f"split {split}, step {config.train.steps}") + "\n")
    return by_noise


def train_and_evaluate(config, workdir, *, stop_after: int | None = None) -> dict | None:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints); returns the final results.

    Args:
      stop_after: end this invocation after that many steps in all (a checkpoint is saved there),
        e.g. to fit a cluster's time slot; rerunning continues. Returns None in that case.

    Raises:
      UserError: for a config that ``jdeblur.train.defaults.validate`` refuses, before anything
        is written.
    """
    validate(config)  # a UserError naming the field, before anything is built or written
    workdir = pathlib.Path(workdir)
    train_cfg, eval_cfg = config.train, config.eval
    imported = provenance.imported_from(workdir)
    if imported is not None:
        raise UserError(f"--workdir {workdir}: holds weights imported from {imported['path']}, not a training run; "
                        f"train from them in a new workdir with --config.train.init_from={workdir}")

    mesh = parallel.make_mesh(train_cfg.num_devices)
    streams = seed_streams(config.seed)
    model = build_model(config.model)
    tx, schedule = optim.make_optimizer(config.optim, train_cfg.steps)
    train_step = build_train_step(config, mesh, model, tx, schedule)

    # The datasets first: a bad source folder fails here, before anything is written in the workdir.
    loader = make_batches(config.data, seed=streams["data"], global_batch=train_cfg.global_batch,
                          margin=input_margin(config))
    items = evaluation.make_eval_items(config, config.data.eval_split, eval_cfg.max_images)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        lock = workdir_lock.acquire(workdir)  # one trainer per workdir, until this function returns
    except BaseException:
        loader.close()
        raise
    with lock:
        return _train_in_locked_workdir(config, workdir, stop_after=stop_after, mesh=mesh, streams=streams,
                                        model=model, tx=tx, train_step=train_step, loader=loader, items=items)


def _train_in_locked_workdir(config, workdir, *, stop_after, mesh, streams, model, tx, train_step, loader,
                             items) -> dict | None:
    """The part of ``train_and_evaluate`` that writes in the workdir, from the config record to the end."""
    train_cfg, eval_cfg = config.train, config.eval
    provenance.record_run(config, workdir)

    checkpoints = Checkpointer(workdir, keep=train_cfg.keep_checkpoints)
    main_process = jax.process_index() == 0

    def warn(message):
        if main_process:
            print(message, file=sys.stderr, flush=True)

    resumed = checkpoints.restore_latest(abstract_state(config, model, tx), mesh, warn=warn)
    pending = []  # per-step measurements of the logging interval in progress
    if resumed is not None:
        start, state, data_state, log_state = resumed
        loader.set_state(data_state)
        pending = interval_from_record(log_state)  # a checkpoint between two log steps: its interval so far
    elif train_cfg.get("init_from") is not None:
        start = 0
        params, source_step = init_from.initial_params(config, model)
        state = parallel.replicate(create_state(params, tx, ema=train_cfg.ema_decay > 0), mesh)
    else:
        start = 0
        state = parallel.replicate(initial_state(config, model, tx, streams["init"]), mesh)
    if main_process:
        forget_records_after(workdir / "metrics.jsonl", start)
        # A finished run resumed is evaluated again at its last step.
        forget_records_after(workdir / "eval.jsonl", start - 1 if start == train_cfg.steps else start)
    batches = device_prefetch(loader, mesh, size=config.data.device_prefetch, mode=train_cfg.parallel)

    convention = eval_cfg.convention
    baselines = evaluation.cached_baseline_scores(items, eval_cfg, convention, workdir / "baselines.json")

    logger = MetricLogger(workdir, total_steps=train_cfg.steps, initial_step=start,
                          progress=train_cfg.progress)
    if start:
        logger.write(f"resuming from step {start} in {workdir}")
    elif train_cfg.get("init_from") is not None:
        logger.write(f"starting from the parameters of {train_cfg.init_from} (checkpoint {source_step})")

    def run_evaluation(step):
        table, families, restored = evaluation.evaluate(model, eval_params(state), items, eval_cfg,
                                                        baselines=baselines, convention=convention)
        logger.evaluation(step, table, convention)
        if main_process:
            shown = [items[i] for i in range(min(len(items), eval_cfg.samples))]
            evaluation.save_sample_grid(shown, restored, workdir / "samples" / f"step_{step:07d}.png",
                                        count=eval_cfg.samples,
                                        kernels=evaluation.estimated_kernels(model, eval_params(state), shown))
        return table, families

    # Throughput of the steps timed in this process since the last log line or evaluation.
    timed, wait_s, interval_start = 0, 0.0, time.perf_counter()
    table = families = None
    try:
        for step in range(start, train_cfg.steps):
            t0 = time.perf_counter()
            batch = next(batches)
            wait_s += time.perf_counter() - t0
            state, stats = train_step(state, batch, streams["step"])
            timed += 1
            done = step + 1
            fault_hook("kill_after_step", done)
            pending.append(stats)
            last = done == train_cfg.steps
            log_now = done % train_cfg.log_every == 0 or last
            evaluate_now = done % train_cfg.eval_every == 0 or last
            save_now = evaluate_now or done % train_cfg.checkpoint_every == 0 or done == stop_after
            if log_now or save_now:
                # One transfer per interval (the device runs ahead between them), and one before every
                # save or evaluation, so that a non-finite state is never saved or evaluated.
                pending = jax.device_get(pending)
                bad = nonfinite_steps(pending, done)
                if bad and train_cfg.nonfinite == "stop":
                    checkpoints.close()  # commits the save in flight, if any: the last good checkpoint
                    logger.close()
                    raise NonFiniteError(
                        f"non-finite loss or gradients at step {bad[0]}; training stopped; the last good "
                        f"checkpoint, step {checkpoints.latest_step()}, is kept in {workdir} "
                        f"(config.train.nonfinite=skip skips such updates instead)")
            if log_now:
                elapsed = time.perf_counter() - interval_start
                values = interval_metrics(pending)
                values["skipped_steps"] = len(bad)
                values["images_per_s"] = timed * train_cfg.global_batch / elapsed
                values["data_wait_fraction"] = wait_s / elapsed
                logger.train(done, values)
                if bad:
                    logger.write(f"step {done}: skipped the updates of steps {', '.join(map(str, bad))} "
                                 f"(non-finite loss or gradients)")
                pending = []
                timed, wait_s, interval_start = 0, 0.0, time.perf_counter()
            if evaluate_now:
                table, families = run_evaluation(done)
                checkpoints.save(done, state, batches.get_state(), metrics=table["model"],
                                 log_state=interval_record(pending))
                timed, wait_s, interval_start = 0, 0.0, time.perf_counter()  # evaluation is not training time
            elif save_now:
                checkpoints.save(done, state, batches.get_state(), log_state=interval_record(pending))
            if save_now:
                fault_hook("kill_during_save", done)
            if done == stop_after and not last:
                checkpoints.close()
                logger.close()
                return None
    finally:  # the loader's reader threads end here, not whenever the loader is collected
        batches.close()
        logger.close_progress()  # on an error, its one line then comes last, after the bar
    if table is None:  # resumed a finished run: evaluate what is there
        table, families = run_evaluation(train_cfg.steps)
    checkpoints.close()
    final = {"step": train_cfg.steps, "convention": convention, "results": table, "by_family": families,
             "split": config.data.eval_split, "splits": {}, "model_label": gains.model_label(model)}
    if gains.enabled(config):
        final["by_noise"] = {}
        for split in (config.data.eval_split, *eval_cfg.final_splits):
            final["by_noise"][split] = _score_gains(config, model, eval_params(state), split, workdir, logger)
    for split in eval_cfg.final_splits:
        extra = evaluation.make_eval_items(config, split)
        extra_baselines = evaluation.cached_baseline_scores(extra, eval_cfg, convention,
                                                            workdir / f"baselines_{split}.json")
        final["splits"][split] = evaluation.evaluate(model, eval_params(state), extra, eval_cfg,
                                                     baselines=extra_baselines, convention=convention)[0]
        logger.write(f"split {split}: " + ", ".join(
            f"{m} {v['psnr']:.2f} dB" for m, v in final["splits"][split].items()))
    logger.close()
    if main_process:
        plot_curves(workdir)
        write_json(workdir / FINAL, final, indent=1)
    return final
