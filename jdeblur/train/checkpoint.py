"""Checkpoints with orbax: the train state and the data iterator's state, saved together and verified.

Saves are asynchronous (training goes on while the arrays are written), committed atomically by
orbax (a step directory appears only once complete; a killed save leaves a temporary directory,
removed at the next start) and pruned by two policies at once: keep the latest ``keep``
checkpoints, and keep the best one by evaluation PSNR. Pruning happens only after the next save
is committed, so a good checkpoint is never removed before its successor is complete. The
evaluation history lives in ``eval.jsonl`` in the workdir, from which the best step is read.

A checkpoint may also carry a ``log`` item: the training loop's record of the logging interval in
progress (per-step measurements since the last ``metrics.jsonl`` line), so that a run resumed from
a checkpoint between two log steps writes the same lines as the uninterrupted run.

Integrity: orbax stores no checksums, and a flipped byte in an array file restores silently as a
different value (tried: orbax-checkpoint 0.12.8). Each checkpoint therefore carries an
``integrity`` item: a 32-bit checksum of every leaf of the state, computed on the devices, and a
CRC of the data iterator's state (and of the log item). A restore recomputes and compares them.

Corruption is decided from the data, never from an exception alone: a checkpoint is corrupt
(``CorruptCheckpointError``) when its checksums differ, or when it fails to restore twice although
every one of its files reads back (a truncated, missing or garbled array file). A file that
cannot be read (an ``OSError``: a storage hiccup, a network file system away) is not the
checkpoint's fault: ``CheckpointReadError``, and nothing is renamed. ``restore_latest`` falls back
from a corrupt checkpoint to the previous one and sets the bad one aside as ``STEP.corrupt``. A
checkpoint without an integrity record (written before jdeblur had one, or its ``integrity/``
folder lost) is restored with a warning that it could not be verified.
"""
import contextlib
import json
import logging
import os
import pathlib
import warnings
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from orbax.checkpoint import checkpoint_managers as policies

from jdeblur.errors import RunFailed, UserError
from jdeblur.train.logger import read_jsonl

BEST_METRIC = "psnr"
INTEGRITY = "integrity"  # the checkpoint item holding the checksums
LOG = "log"  # the checkpoint item holding the logging interval in progress


class CorruptCheckpointError(UserError):
    """A checkpoint that cannot be read back as it was written; the message names its folder."""


class CheckpointReadError(RunFailed):
    """A checkpoint's files could not be read (an I/O error, not bad data); nothing was renamed."""


@jax.jit
def _leaf_checksums(state) -> list:
    """Per leaf, the sum of ``word_i * (2i + 1)`` mod 2**32 over its bits as unsigned words.

    The weights are odd, so changing any one word changes its leaf's sum.
    """
    sums = []
    for leaf in jax.tree.leaves(state):
        leaf = leaf.astype(jnp.uint8) if leaf.dtype == jnp.bool_ else leaf
        unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[leaf.dtype.itemsize]
        words = jax.lax.bitcast_convert_type(leaf, unsigned).astype(jnp.uint32).ravel()
        sums.append(jnp.sum(words * (2 * jnp.arange(words.size, dtype=jnp.uint32) + 1), dtype=jnp.uint32))
    return sums


def state_checksums(state) -> dict[str, int]:
    """The checksum of every leaf of ``state`` by its path, e.g. ``{"['params']['Conv_0']['bias']": 123}``."""
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(state)]
    return dict(zip(paths, (int(s) for s in jax.device_get(_leaf_checksums(state)))))


def json_checksum(data) -> int:
    return zlib.crc32(json.dumps(data, sort_keys=True).encode())


class _ReadOnlyNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Given directory is read only")


@contextlib.contextmanager
def _without_read_only_notice():
    notice, logger = _ReadOnlyNotice(), logging.getLogger("absl")
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


class Checkpointer:
    """Saves and restores ``(train state, data iterator state)`` under ``workdir/checkpoints``."""

    def __init__(self, workdir, *, keep: int = 2, async_save: bool = True, read_only: bool = False):
        self.directory = pathlib.Path(workdir).resolve() / "checkpoints"
        preserve = policies.AnyPreservationPolicy([
            policies.LatestN(keep),
            # reverse=False sorts ascending and preserves the last n, i.e. the highest PSNR.
            policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], reverse=False, n=1,
                           keep_checkpoints_without_metrics=False),
        ])
        # Read-only: save_interval_steps=0 as orbax would set it (with a warning), and its notice
        # "Given directory is read only" dropped: it tells a user their folder is read-only when
        # only this reader is.
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preserve, enable_async_checkpointing=async_save, create=not read_only,
            read_only=read_only, cleanup_tmp_directories=not read_only, save_interval_steps=0 if read_only else 1,
        )
        with _without_read_only_notice():
            self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state, data_state: dict, *, metrics: dict | None = None,
             log_state: dict | None = None) -> None:
        """Starts saving ``state``, ``data_state`` and ``log_state`` (if given) at ``step`` (returns before
        the write ends)."""
        if step in self.manager.all_steps():
            return
        checks = {"state": state_checksums(state), "data": json_checksum(data_state)}
        items = {"state": ocp.args.StandardSave(state), "data": ocp.args.JsonSave(data_state)}
        if log_state is not None:
            checks[LOG] = json_checksum(log_state)
            items[LOG] = ocp.args.JsonSave(log_state)
        args = ocp.args.Composite(**items, **{INTEGRITY: ocp.args.JsonSave(checks)})
        metrics = None if metrics is None else {BEST_METRIC: float(metrics[BEST_METRIC])}
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int, abstract_state, mesh, *,
                warn: Callable[[str], None] | None = None) -> tuple[dict, dict, dict]:
        """Restores the checkpoint of ``step`` replicated over ``mesh``; returns (state, data_state, log_state).

        Args:
          abstract_state: a pytree with the state's shapes and dtypes (e.g. from ``jax.eval_shape``).
          warn: told when the checkpoint has no integrity record (default: ``warnings.warn``).

        Returns:
          ``log_state`` is ``{}`` for a checkpoint saved without one.

        Raises:
          CorruptCheckpointError: the checkpoint's data is damaged (see the module docstring).
          CheckpointReadError: its files could not be read.
        """
        folder = self.directory / str(step)
        replicated = NamedSharding(mesh, P())
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract_state
        )
        items = {"state": ocp.args.StandardRestore(target), "data": ocp.args.JsonRestore()}
        if (folder / LOG).is_dir():
            items[LOG] = ocp.args.JsonRestore()
        verified = (folder / INTEGRITY).is_dir()
        if verified:
            items[INTEGRITY] = ocp.args.JsonRestore()
        else:
            (warn or warnings.warn)(f"checkpoint {folder} has no integrity record ({INTEGRITY}/): restored "
                                    f"unverified, a damaged array would go unnoticed")
        restored = self._restore_items(folder, step, items)
        if verified:
            expected = restored[INTEGRITY]
            actual = state_checksums(restored["state"])
            changed = [path for path in expected["state"] if actual.get(path) != expected["state"][path]]
            for item, name in (("data", "data iterator state"), (LOG, "log record")):
                if item in expected and json_checksum(restored.get(item)) != expected[item]:
                    changed.append(name)
            if changed or actual.keys() != expected["state"].keys():
                named = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
                raise CorruptCheckpointError(
                    f"checkpoint {folder} is corrupt: {named or 'its leaves'} differ from the checksums "
                    f"written with it; expected a checkpoint that reads back as it was saved")
        return restored["state"], restored["data"], restored.get(LOG) or {}

    def _restore_items(self, folder: pathlib.Path, step: int, items: dict):
        """orbax's restore of ``items``, its failures sorted into damaged data and unreadable files."""
        args = ocp.args.Composite(**items)
        try:
            return self.manager.restore(step, args=args)
        except Exception as first:  # orbax, tensorstore and json raise many types: the files decide
            unreadable = unreadable_file(folder)
            if unreadable is not None:
                raise CheckpointReadError(f"checkpoint {folder}: reading {unreadable[0]} failed ({unreadable[1]}); "
                                          f"nothing was changed: rerun when the storage answers") from first
        try:  # every file reads: a transient failure passes now, damaged data fails again
            return self.manager.restore(step, args=args)
        except OSError as second:
            if isinstance(second, FileNotFoundError):
                raise CorruptCheckpointError(f"checkpoint {folder} is unreadable (a file is missing: "
                                             f"{second}); expected a complete checkpoint") from second
            raise CheckpointReadError(f"checkpoint {folder}: reading it failed twice ({type(second).__name__}: "
                                      f"{second}); nothing was changed: rerun when the storage answers") from second
        except Exception as second:
            reason = next((line for line in str(second).splitlines() if line.strip()), type(second).__name__)
            raise CorruptCheckpointError(f"checkpoint {folder} is unreadable ({type(second).__name__}: "
                                         f"{reason[:300]}); expected a complete checkpoint") from second

    def restore_latest(self, abstract_state, mesh, *,
                       warn: Callable[[str], None]) -> tuple[int, dict, dict, dict] | None:
        """Restores the newest checkpoint that reads back intact: ``(step, state, data_state, log_state)``.

        A newer checkpoint that fails is reported with ``warn`` and, once an older one has been
        restored, renamed ``STEP.corrupt`` (kept for inspection, out of the resumed run's way).
        Returns None when there is no checkpoint.

        Raises:
          CorruptCheckpointError: there are checkpoints, and none reads back intact (nothing is renamed).
          CheckpointReadError: a checkpoint's files could not be read (nothing is renamed).
        """
        bad = []
        for step in sorted(self.steps(), reverse=True):
            try:
                state, data_state, log_state = self.restore(step, abstract_state, mesh,
                                                            warn=lambda m: warn(f"warning: {m}"))
            except CorruptCheckpointError as e:
                warn(f"warning: {e}; trying the previous checkpoint")
                bad.append(step)
                continue
            if bad:
                self._set_aside(bad)
                warn(f"warning: resuming from step {step}, the newest intact checkpoint")
            return step, state, data_state, log_state
        if bad:
            raise CorruptCheckpointError(f"no checkpoint in {self.directory} reads back intact (steps "
                                         f"{', '.join(map(str, bad))}); move the folder away to start over")
        return None

    def _set_aside(self, steps: list[int]) -> None:
        """Renames the folders of ``steps`` to ``STEP.corrupt`` (process 0); every process forgets them."""
        if jax.process_index() == 0:
            for step in steps:
                target, n = self.directory / f"{step}.corrupt", 1
                while target.exists():
                    n += 1
                    target = self.directory / f"{step}.corrupt{n}"
                (self.directory / str(step)).rename(target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jdeblur: corrupt checkpoints set aside")
        self.manager.reload()

    def wait(self) -> None:
        """Blocks until every started save is committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def unreadable_file(folder: pathlib.Path) -> tuple[pathlib.Path, OSError] | None:
    """The first file (or folder) under ``folder`` that cannot be read to its end, with the error; None if
    all can."""
    unlistable = []
    for root, _, files in os.walk(folder, onerror=unlistable.append):
        for name in files:
            path = pathlib.Path(root, name)
            try:
                with open(path, "rb") as f:
                    while f.read(1 << 20):
                        pass
            except OSError as e:
                return path, e
    return (pathlib.Path(unlistable[0].filename or folder), unlistable[0]) if unlistable else None


def best_step(workdir) -> int | None:
    """The evaluated step with the highest PSNR that still has a checkpoint, else the latest one."""
    workdir = pathlib.Path(workdir)
    directory = workdir / "checkpoints"
    available = {int(p.name) for p in directory.glob("*") if p.name.isdigit()} if directory.is_dir() else set()
    scored = [(r["model"][BEST_METRIC], r["step"]) for r in read_jsonl(workdir / "eval.jsonl")
              if r["step"] in available]
    if scored:
        return max(scored)[1]
    return max(available) if available else None
