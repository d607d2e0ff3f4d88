"""The experiment config: every experiment validates, and a wrong value fails with one and the same
one-line ``UserError`` whether it comes through ``launch.py``, a sweep or ``train_and_evaluate``,
before anything is written."""
import inspect
import re

import pytest

from jdeblur import cli, sweep
from jdeblur import config as cfglib
from jdeblur.data import dead_leaves, pipeline
from jdeblur.errors import UserError
from jdeblur.physics import degrade, kernel_mixture
from jdeblur.train import defaults, optim
from jdeblur.train.defaults import base_config, validate
from jdeblur.train.loop import train_and_evaluate

EXPERIMENT = "tiny_sweep"  # declares a sweep, so all three ways in take the same experiment
WRONG = {
    "model.kwargs={'width': 0}": "config.model.kwargs.width=0: expected int",
    "model.kwargs={'width': 'a'}": "config.model.kwargs.width='a': expected int",
    "degrade.noise.sigma=(0.2,0.1)": "config.degrade.noise.sigma: expected a range (low, high)",
    "eval.crop=0": "config.eval.crop: expected an integer >= 1, got 0",
}


@pytest.mark.parametrize("override", WRONG)
def test_a_wrong_value_fails_alike_from_launch_sweep_and_train_and_evaluate(override, tmp_path, capsys):
    overrides = [override, f"data.data_dir={tmp_path / 'tfds'}"]
    with pytest.raises(UserError) as direct:
        train_and_evaluate(cfglib.load_config(EXPERIMENT, overrides), tmp_path / "direct")
    with pytest.raises(UserError) as swept:
        sweep.run_sweep(EXPERIMENT, tmp_path / "sweep", extra_overrides=[f"--config.{o}" for o in overrides])
    capsys.readouterr()
    code = cli.main(["train", "--config", EXPERIMENT, "--workdir", str(tmp_path / "launched"),
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


def documenting_sources() -> dict[str, list[str]]:
    """Per config section (longest prefix wins), the source texts where its fields are documented."""
    def source(obj):
        return inspect.getsource(obj)

    return {
        "": [source(defaults.base_config)],
        "data": [source(pipeline.default_data_config)],
        "data.dead_leaves": [source(dead_leaves.default_config)],
        "degrade": [source(degrade.default_degrade_config)],
        "degrade.blur": [source(kernel_mixture.default_blur_config)],
        "optim": [source(optim.default_optim_config), optim.__doc__],
    }


def is_documented(field: str, text: str) -> bool:
    """Whether ``text`` documents ``field`` (dotted, relative to its section): a comment on the line
    that sets it or just above, a comment naming it, or a docstring entry (``field:`` or ````field````)."""
    leaf = field.rsplit(".", 1)[-1]
    if f"{field}:" in text or f"{field}," in text or f"``{field}``" in text:
        return True
    lines = text.splitlines()
    setter = re.compile(rf'(\.{leaf}\s*=[^=]|\b{leaf}=|"{leaf}":)')
    for i, line in enumerate(lines):
        code, _, comment = line.partition("#")
        if comment and re.search(rf"\b{leaf}\b", comment):
            return True
        if setter.search(code) and (comment or (i and lines[i - 1].strip().startswith("#"))):
            return True
    return False


def test_every_field_of_the_base_config_is_documented_where_it_is_set():
    sources = documenting_sources()
    undocumented = []
    for field in cfglib.to_overrides(base_config()):
        section = max((s for s in sources if not s or field.startswith(s + ".")), key=len)
        relative = field.removeprefix(section + ".") if section else field
        if not any(is_documented(relative, text) for text in sources[section]):
            undocumented.append(field)
    assert not undocumented, f"fields without a comment or docstring entry where they are set: {undocumented}"
    assert not is_documented("x", "    cfg.x = 1\n    y=2,  # another field\n")  # the check itself can fail
    assert is_documented("x", "    # what x is\n    x=1,\n") and is_documented("a.x", '"""\n    a.x: what\n"""')
