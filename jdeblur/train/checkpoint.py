"""Checkpoints with orbax: the train state and the data iterator's state, saved together.

Saves are asynchronous (training goes on while the arrays are written), committed atomically by
orbax (a step directory appears only once complete, so a crash never leaves a half-written
checkpoint in place of a good one), and pruned by two policies at once: keep the latest ``keep``
checkpoints, and keep the best one by evaluation PSNR. The evaluation history lives in
``eval.jsonl`` in the workdir, from which the best step is read.
"""
import json
import pathlib

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P
from orbax.checkpoint import checkpoint_managers as policies

BEST_METRIC = "psnr"


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
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preserve, enable_async_checkpointing=async_save, create=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state, data_state: dict, *, metrics: dict | None = None) -> None:
        """Starts saving ``state`` and ``data_state`` at ``step`` (returns before the write ends)."""
        if step in self.manager.all_steps():
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state))
        metrics = None if metrics is None else {BEST_METRIC: float(metrics[BEST_METRIC])}
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int, abstract_state, mesh) -> tuple[dict, dict]:
        """Restores the checkpoint of ``step`` replicated over ``mesh``; returns (state, data_state).

        Args:
          abstract_state: a pytree with the state's shapes and dtypes (e.g. from ``jax.eval_shape``).
        """
        replicated = NamedSharding(mesh, P())
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract_state
        )
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore())
        )
        return restored["state"], restored["data"]

    def wait(self) -> None:
        """Blocks until every started save is committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def best_step(workdir) -> int | None:
    """The evaluated step with the highest PSNR that still has a checkpoint, else the latest one."""
    workdir = pathlib.Path(workdir)
    directory = workdir / "checkpoints"
    available = {int(p.name) for p in directory.glob("*") if p.name.isdigit()} if directory.is_dir() else set()
    history = workdir / "eval.jsonl"
    if history.is_file():
        records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        scored = [(r["model"][BEST_METRIC], r["step"]) for r in records if r["step"] in available]
        if scored:
            return max(scored)[1]
    return max(available) if available else None
