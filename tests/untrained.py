"""A workdir as ``launch.py train`` leaves it, with a model's initial parameters as its one checkpoint:
what deblur, export and the Python API read, without the cost of training."""
import pathlib

import jax
import numpy as np

from jdeblur import config as cfglib
from jdeblur.models.registry import build_model
from jdeblur.train import optim, provenance
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.state import initial_state


def untrained_workdir(workdir, spec: str = "experiments/unet.py:runlocal", overrides=(), *, seed: int = 0,
                      perturb: float = 0.0):
    """Writes ``workdir`` for experiment ``spec`` with ``overrides``; returns it as a Path.

    ``perturb`` adds Gaussian noise of that scale to every parameter: the networks' last layers
    start at zero (the output is the input), which would hide what a comparison should see.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = cfglib.load_config(spec, overrides)
    provenance.record_run(config, workdir)
    model = build_model(config.model)
    state = initial_state(config, model, optim.make_optimizer(config.optim, config.train.steps)[0],
                          jax.random.key(seed))
    rng = np.random.default_rng(seed)
    for name in ("params", "ema_params"):
        if perturb and name in state:
            state[name] = jax.tree.map(lambda p: p + perturb * rng.standard_normal(p.shape).astype(p.dtype),
                                       state[name])
    manager = Checkpointer(workdir, async_save=False)
    manager.save(1, state, {})
    manager.close()
    return workdir
