"""``import_weights``: a checkpoint from elsewhere written as a jdeblur workdir (``launch.py import-weights``).

The workdir holds what a training run's does, so ``eval``, ``deblur`` and ``train.init_from``
read it alike: ``config.json`` (the experiment whose model the weights fit), ``run.json`` (with
``imported_from``: the file, its SHA-256, format and wrapper key) and one checkpoint, step 0,
written by the project's ``Checkpointer`` with a fresh optimizer state and no data position.
Training in it is refused (``jdeblur.train.loop``): a run starts from it with
``train.init_from``. The workdir appears whole or not at all (``jdeblur.atomic.new_folder``): an
import that fails or is killed half-way leaves no workdir to confuse ``eval`` or a retry.
"""
import pathlib

import jax

from jdeblur.atomic import new_folder
from jdeblur.errors import UserError
from jdeblur.models import registry
from jdeblur.train import evaluate, optim, provenance
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.state import abstract_state, create_state
from jdeblur.weights import nafnet
from jdeblur.weights.state_dict import load_state_dict

# config.model.name -> convert(tensors, abstract_params, *, source) for checkpoints of its official code.
CONVERTERS = {"nafnet": nafnet.convert}
IMPORT_STEP = 0


def import_weights(checkpoint, config, workdir, *, param_key: str | None = None) -> dict:
    """Converts ``checkpoint`` to ``config``'s model and writes it as a workdir; returns the source record.

    Everything is checked (the config's model, optimizer and evaluation sections, the workdir is
    new, the file reads, every tensor fits) before anything is written. The data section is not:
    ``deblur`` needs no dataset.

    Raises:
      UserError: a workdir that already holds a run (or any file), a model with no converter, an
        unreadable file, or tensors that do not fit the configured model (all of them listed).
    """
    workdir = pathlib.Path(workdir)
    registry.check_model_config(config.model)
    optim.check_optim_config(config.optim)
    evaluate.check_eval_config(config.eval)
    if config.model.name not in CONVERTERS:
        raise UserError(f"config.model.name={config.model.name!r}: no importer for its checkpoints; "
                        f"expected one of {sorted(CONVERTERS)}")
    if (workdir / "config.json").exists() or (workdir / "checkpoints").exists():
        raise UserError(f"--workdir {workdir}: already holds a run; expected a new or empty folder")
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise UserError(f"--workdir {workdir}: exists and is not an empty folder; expected a new or empty folder")
    state_dict = load_state_dict(checkpoint, key=param_key)
    model = registry.build_model(config.model)
    tx, _ = optim.make_optimizer(config.optim, config.train.steps)
    abstract = abstract_state(config, model, tx)["params"]
    params = CONVERTERS[config.model.name](state_dict.tensors, abstract, source=state_dict.path)
    source = {"path": str(pathlib.Path(state_dict.path).resolve()), "sha256": state_dict.sha256,
              "format": state_dict.format, "key": state_dict.key, "tensors": len(state_dict.tensors)}
    state = create_state(jax.device_put(params), tx, ema=config.train.ema_decay > 0)
    with new_folder(workdir) as scratch:
        provenance.record_import(config, scratch, source)
        checkpoints = Checkpointer(scratch, async_save=False)
        try:
            checkpoints.save(IMPORT_STEP, state, {})
        finally:
            checkpoints.close()
    if provenance.imported_from(workdir) != source:  # new_folder kept a workdir another process made meanwhile
        raise UserError(f"--workdir {workdir}: written by another process during this import; expected a new folder")
    return source
