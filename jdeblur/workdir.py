"""A trained run's workdir, read back: its config, its model and its best (or chosen) parameters.

``train_and_evaluate`` writes there ``config.json`` (the full config), ``run.json`` (commit,
packages, devices), ``metrics.jsonl`` and ``eval.jsonl`` (the logs), ``checkpoints/``, ``samples/``,
``curves.png``, ``tensorboard/`` and, when training has finished, ``FINAL`` (the results).
"""
import pathlib
import sys

import jax
import ml_collections

from jdeblur.atomic import read_json
from jdeblur.config import apply_overrides
from jdeblur.errors import UserError
from jdeblur.models.registry import build_model
from jdeblur.train import checkpoint, optim, parallel
from jdeblur.train.state import abstract_state, eval_params

FINAL = "final.json"  # the final results; a run whose workdir holds it is finished


class WorkdirError(UserError):
    """A workdir that holds no usable run."""


def load_config(workdir) -> ml_collections.ConfigDict:
    path = pathlib.Path(workdir) / "config.json"
    if not path.is_file():
        raise WorkdirError(f"--workdir {workdir}: no config.json; expected the workdir of a `launch.py train` run")
    config = ml_collections.ConfigDict(read_json(path))
    _lists_to_tuples(config)
    return config


def _lists_to_tuples(config) -> None:
    """JSON turns the config's tuples into lists; turn them back (jit needs hashable static configs)."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            _lists_to_tuples(value)
        elif isinstance(value, list):
            config[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)


def choose_step(workdir, which: str = "best") -> int:
    """The checkpoint step named by ``which``: 'best', 'latest' or a step number."""
    workdir = pathlib.Path(workdir)
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())
    if not steps:
        raise WorkdirError(f"--workdir {workdir}: no checkpoints yet; train first")
    if which == "best":
        return checkpoint.best_step(workdir)
    if which == "latest":
        return steps[-1]
    if not which.isdigit() or int(which) not in steps:
        raise WorkdirError(f"--checkpoint {which}: expected best, latest or one of the steps {steps}")
    return int(which)


def load_trained(workdir, which: str = "best", overrides=()):
    """Returns (config, model, params, step): the evaluation parameters (the EMA when kept).

    ``overrides`` (``'field=value'`` strings) change the config the run is then used with, e.g.
    ``model.kwargs={'stages': 8}`` (an unfolded model run for more iterations: plug-and-play
    with its trained prior) or ``eval.noise_levels=(0.02,)``; ones that would change the shapes of
    the parameters (``model.kwargs={'width': 64}``) are refused.
    """
    config = load_config(workdir)
    step = choose_step(workdir, which)
    model = build_model(config.model)
    tx, _ = optim.make_optimizer(config.optim, config.train.steps)
    abstract = abstract_state(config, model, tx)
    mesh = parallel.make_mesh(1)
    manager = checkpoint.Checkpointer(workdir, async_save=False, read_only=True)
    try:
        state = manager.restore(step, abstract, mesh, warn=lambda m: print(f"warning: {m}", file=sys.stderr))[0]
    finally:
        manager.close()
    if overrides:
        config.lock()
        apply_overrides(config, overrides)
        model = build_model(config.model)
        changed = jax.tree.map(lambda a: a.shape, abstract_state(config, model, tx)["params"])
        if changed != jax.tree.map(lambda a: a.shape, abstract["params"]):
            raise UserError(f"{' '.join(overrides)}: changes the shapes of the parameters of {workdir}; "
                            "expected overrides that the trained parameters still fit (e.g. an unfolded "
                            "model's stages)")
    return config, model, eval_params(state), step
