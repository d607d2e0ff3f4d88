"""The experiment config: every experiment validates, and a wrong value fails with one and the same
one-line ``UserError`` whether it comes through ``launch.py``, a sweep or ``train_and_evaluate``,
before anything is written."""
import pytest

import launch
from jdeblur import config as cfglib
from jdeblur import sweep
from jdeblur.errors import UserError
from jdeblur.train.defaults import base_config, validate
from jdeblur.train.loop import train_and_evaluate

EXPERIMENT = "tiny_sweep"  # declares a sweep, so all three ways in take the same experiment
WRONG = {
    "model.kwargs={'width': 0}": "config.model.kwargs.width=0: expected int",
    "model.kwargs={'width': 'a'}": "config.model.kwargs.width='a': expected int",
    "degrade.noise.sigma=(0.2,0.1)": "config.degrade.noise.sigma: expected a range (low, high)",
}


@pytest.mark.parametrize("override", WRONG)
def test_a_wrong_value_fails_alike_from_launch_sweep_and_train_and_evaluate(override, tmp_path, capsys):
    overrides = [override, f"data.data_dir={tmp_path / 'tfds'}"]
    with pytest.raises(UserError) as direct:
        train_and_evaluate(cfglib.load_config(EXPERIMENT, overrides), tmp_path / "direct")
    with pytest.raises(UserError) as swept:
        sweep.run_sweep(EXPERIMENT, tmp_path / "sweep", extra_overrides=[f"--config.{o}" for o in overrides])
    capsys.readouterr()
    code = launch.main(["train", "--config", EXPERIMENT, "--workdir", str(tmp_path / "launched"),
                        *[f"--config.{o}" for o in overrides]])
    stderr = capsys.readouterr().err.splitlines()
    message = str(direct.value)
    assert message.startswith(WRONG[override]) and "\n" not in message, message
    assert str(swept.value) == message
    assert code == 2 and stderr == [f"error: {message}"], stderr
    assert list(tmp_path.iterdir()) == []


def test_the_base_config_and_every_experiment_validate(tmp_path):
    base = base_config()
    base.data.data_dir = str(tmp_path / "tfds")
    validate(base)
    for name in cfglib.list_experiments():
        config = cfglib.load_config(f"{name}:runlocal" if name != EXPERIMENT else name,
                                    [f"data.data_dir={tmp_path / 'tfds'}"])
        if config.data.name not in ("gopro", "paired_folder", "image_folder"):  # these need a source folder
            validate(config)
    assert list(tmp_path.iterdir()) == []
