"""Experiment loading and command-line overrides."""
import textwrap

import ml_collections
import pytest

from jdeblur import config as cfglib

EXPERIMENT = textwrap.dedent(
    """
    import ml_collections

    def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.seed = 0
        c.name = "base"
        c.lr = 1e-3
        c.flag = False
        c.sizes = (1, 2)
        c.maybe = None
        c.train = dict(steps=10, batch=4)
        if arg == "runlocal":
            c.train.steps = 2
        elif arg is not None:
            raise ValueError(f"unknown variant {arg!r}")
        return c
    """
)


@pytest.fixture
def experiments(tmp_path):
    (tmp_path / "toy.py").write_text(EXPERIMENT)
    (tmp_path / "other.py").write_text(EXPERIMENT)
    return tmp_path


def test_load_by_name_path_and_arg(experiments):
    assert cfglib.load_config("toy", directory=experiments).train.steps == 10
    assert cfglib.load_config(str(experiments / "toy.py"), directory=experiments).train.steps == 10
    assert cfglib.load_config("toy.py:runlocal", directory=experiments).train.steps == 2


def test_overrides_parse_by_type(experiments):
    c = cfglib.load_config(
        "toy",
        ["--config.train.steps=7", "lr=2", "flag=true", "sizes=(3, 4, 5)", "name=wide", "maybe=[1, 2]"],
        directory=experiments,
    )
    assert c.train.steps == 7 and isinstance(c.train.steps, int)
    assert c.lr == 2.0 and isinstance(c.lr, float)
    assert c.flag is True
    assert c.sizes == (3, 4, 5)
    assert c.name == "wide"
    assert c.maybe == [1, 2]


def test_config_is_locked(experiments):
    c = cfglib.load_config("toy", directory=experiments)
    with pytest.raises(AttributeError):
        c.new_field = 1


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stpes=5", "did you mean train.steps"),
        ("train.steps=fast", "expected a value of type int"),
        ("flag=maybe", "expected true or false"),
        ("train=3", "is a group"),
        ("train={1, 2}", "give a whole dict"),
        ("steps", "expected FIELD=VALUE"),
    ],
)
def test_bad_overrides_are_clear(experiments, override, message):
    with pytest.raises(cfglib.ConfigError, match=message):
        cfglib.load_config("toy", [override], directory=experiments)


def test_unknown_experiment_lists_valid_names(experiments):
    with pytest.raises(cfglib.ConfigError, match="valid names: other, toy"):
        cfglib.load_config("nope", directory=experiments)


def test_bad_variant_names_file(experiments):
    with pytest.raises(cfglib.ConfigError, match="unknown variant"):
        cfglib.load_config("toy:huge", directory=experiments)


def test_to_overrides_flattens():
    c = ml_collections.ConfigDict(dict(a=1, b=dict(c=2, d=dict(e=3))))
    assert cfglib.to_overrides(c) == {"a": 1, "b.c": 2, "b.d.e": 3}


def test_group_replaced_by_dict_literal(experiments):
    c = cfglib.load_config("toy", ["train={'steps': 3, 'extra': 'x'}"], directory=experiments)
    assert c.train.steps == 3 and c.train.extra == "x"
    with pytest.raises(AttributeError):
        c.train.other = 1
