"""``train.init_from``: a run starts from an imported (or trained) workdir's parameters, and refuses a misfit."""
import jax
import numpy as np
import pytest

from jdeblur.errors import UserError
from jdeblur.models.registry import build_model
from jdeblur.train import init_from, loop, optim
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.defaults import base_config
from jdeblur.train.parallel import make_mesh
from jdeblur.train.state import abstract_state
from jdeblur.weights import nafnet
from jdeblur.weights.importer import import_weights
from jdeblur.weights.state_dict import load_state_dict
from tests.weights.official_fixture import BLOCKS, OFFICIAL


def nafnet_config(data_dir, **blocks):
    """The fixture's NAFNet (tools/make_nafnet_fixture.py) on the embedded images, 16x16 patches."""
    c = base_config()
    c.model.name, c.model.variant, c.model.kwargs = "nafnet", None, dict(BLOCKS, **blocks)
    c.data.update(dict(data_dir=data_dir, patch_size=16, read_threads=1))
    c.degrade.blur.update(dict(size=5, families=("gaussian",), weights=(1.0,)))
    c.degrade.blur.gaussian.sigma = (0.5, 1.0)
    c.optim.update(dict(lr=1e-9, warmup_steps=0))
    c.train.update(dict(steps=2, global_batch=2, num_devices=1, log_every=1, eval_every=2, progress=False))
    c.eval.update(dict(max_images=1, samples=1, wiener_balances=(1e-2,), rl_iterations=2))
    return c


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    workdir = tmp_path_factory.mktemp("imported")
    import_weights(OFFICIAL, nafnet_config(data_dir), workdir)
    return workdir, data_dir


@pytest.mark.slow
def test_a_run_starts_from_the_imported_parameters(imported, tmp_path, capsys, monkeypatch):
    workdir, data_dir = imported
    c = nafnet_config(data_dir)
    c.train.init_from = str(workdir)
    # The step itself is tested elsewhere (and costs a 30 s compile of this model here): a step that
    # changes nothing makes the checkpoint after it the run's initial state, exactly.
    identity_step = lambda state, batch, key: (state, {"finite": True, "loss": 0.0, "lr": 0.0})  # noqa: E731
    monkeypatch.setattr(loop, "build_train_step", lambda *args, **kw: identity_step)
    assert loop.train_and_evaluate(c, tmp_path, stop_after=1) is None  # one step, saved, not evaluated
    model = build_model(c.model)
    tx, _ = optim.make_optimizer(c.optim, c.train.steps)
    abstract = abstract_state(c, model, tx)
    state = restore_state(tmp_path, 1, abstract)
    imported_state = restore_state(workdir, 0, abstract)
    jax.tree.map(np.testing.assert_array_equal, state["params"], imported_state["params"])
    fresh = tx.init(state["params"])
    jax.tree.map(np.testing.assert_array_equal, state["opt_state"], fresh)
    assert f"starting from the parameters of {workdir} (checkpoint 0)" in capsys.readouterr().out


def restore_state(workdir, step, abstract):
    manager = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        return manager.restore(step, abstract, make_mesh(1))[0]
    finally:
        manager.close()


@pytest.mark.parametrize("kernels", ["cpu", "xla"])
def test_either_layout_starts_from_the_official_tensors(imported, kernels):
    # Imported with 'auto' (here 'cpu': blocks scanned over stacked parameters in training); a GPU run's 'xla'
    # unrolls them: both read the same per-block parameters, converted from the official file.
    workdir, data_dir = imported
    c = nafnet_config(data_dir, kernels=kernels)
    c.train.init_from = str(workdir)
    model = build_model(c.model)
    params, step = init_from.initial_params(c, model)
    tx, _ = optim.make_optimizer(c.optim, c.train.steps)
    expected = nafnet.convert(load_state_dict(OFFICIAL).tensors, abstract_state(c, model, tx)["params"], source="")
    jax.tree.map(np.testing.assert_array_equal, params, expected)
    assert step == 0


def test_a_model_that_does_not_match_is_refused(imported, tmp_path):
    workdir, data_dir = imported
    c = nafnet_config(data_dir, width=8)
    c.train.init_from = str(workdir)
    with pytest.raises(UserError, match=rf"config.train.init_from={workdir}: its model \(nafnet None\) does not "
                                        r"match config.model \(nafnet None\): wrong shape \(\d+\): "):
        init_from.check_init_from(c)
    c.train.init_from = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="config.train.init_from=.*nowhere: .*no config.json"):
        init_from.check_init_from(c)


def test_training_in_an_imported_workdir_is_refused(imported):
    workdir, data_dir = imported
    with pytest.raises(UserError, match=rf"--workdir {workdir}: holds weights imported from .*official.pth"):
        loop.train_and_evaluate(nafnet_config(data_dir), workdir)
    with pytest.raises(UserError, match="already holds a run"):
        import_weights(OFFICIAL, nafnet_config(data_dir), workdir)
