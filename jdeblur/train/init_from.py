"""``config.train.init_from``: a new run starting from another workdir's parameters, with a fresh optimizer.

The source is a training run's workdir or one written by ``launch.py import-weights``; its best
checkpoint's evaluation parameters (the average, where the run kept one) are taken, as ``eval``
and ``deblur`` would use them. Only the parameters carry over: the optimizer state, step, learning
rate schedule and data position start afresh, as when BasicSR fine-tunes from a
``pretrain_network_g``. The source's model must have exactly the parameter tree of the configured
one (names and shapes); fields that leave it unchanged (``tlc``, ``train_size``, ``remat``,
``kernels``) may differ. A run that resumes from its own checkpoint ignores ``init_from``.
"""
import pathlib

import jax
import numpy as np

from jdeblur.errors import UserError

FIELD = "config.train.init_from"


def _abstract_params(config, model):
    from jdeblur.train import optim
    from jdeblur.train.state import abstract_state

    tx, _ = optim.make_optimizer(config.optim, config.train.steps)
    return abstract_state(config, model, tx)["params"]


def _source(config):
    """The source workdir's (config, model, abstract params); raises UserError if there is none."""
    from jdeblur import workdir as workdirs
    from jdeblur.models.registry import build_model

    source = config.train.init_from
    if not isinstance(source, str) or not source:
        raise UserError(f"{FIELD}={source!r}: expected the path of a workdir (a training run or import-weights)")
    try:
        source_config = workdirs.load_config(source)
        workdirs.choose_step(source, "best")
    except ValueError as e:
        raise UserError(f"{FIELD}={source}: {e}") from e
    source_model = build_model(source_config.model)
    return source_config, source_model, _abstract_params(source_config, source_model)


def _describe(tree) -> dict[str, tuple]:
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_init_from(config, model=None) -> None:
    """Raises UserError unless ``train.init_from`` is unset or a workdir whose model has the configured parameters."""
    if config.train.get("init_from") is None:
        return
    from jdeblur.models.registry import build_model

    model = model or build_model(config.model)
    source_config, _, source_params = _source(config)
    mine, theirs = _describe(_abstract_params(config, model)), _describe(source_params)
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    shapes = sorted(f"{k} {theirs[k]} (expected {mine[k]})" for k in set(mine) & set(theirs) if mine[k] != theirs[k])
    problems = [f"{label} ({len(items)}): {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"
                for label, items in (("missing there", missing), ("extra there", extra), ("wrong shape", shapes))
                if items]
    if problems:
        raise UserError(
            f"{FIELD}={config.train.init_from}: its model ({source_config.model.name} "
            f"{source_config.model.variant}) does not match config.model ({config.model.name} "
            f"{config.model.variant}): " + "; ".join(problems))


def initial_params(config, model):
    """The source workdir's parameters for ``model`` (host arrays in the configured dtypes), and its step.

    Raises:
      UserError: no such workdir, or its parameters do not fit ``model`` (see ``check_init_from``).
    """
    from jdeblur import workdir as workdirs

    check_init_from(config, model)
    _, _, params, step = workdirs.load_trained(pathlib.Path(config.train.init_from), "best")
    # Via the host: arrays restored on the source's mesh carry its axes into any program they enter.
    dtypes = jax.tree.map(lambda leaf: leaf.dtype, _abstract_params(config, model))
    return jax.tree.map(lambda p, dtype: np.asarray(jax.device_get(p), dtype), params, dtypes), step
