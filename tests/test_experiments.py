"""Every experiment file: the launch commands of its docstring and its declared sweep (every point's
config loads and validates), and the runlocal variant of each model and data source trained end to
end through ``launch.py`` (a subprocess, as a user runs it).

The subprocesses share the session's data folder and JAX compilation cache (tests/conftest.py). A
sweep through ``launch.py sweep`` and ``report`` is tested once, in tests/test_launch.py (tiny_sweep).
"""
import shlex

import pytest

from jdeblur import cli, sweep
from jdeblur import config as cfglib
from tests.data.fake_gopro import make_gopro
from tests.launching import assert_usage_error, check_runlocal_outputs, launch_py

EXPERIMENTS = cfglib.list_experiments()
# Trained through launch.py elsewhere, so not run twice (20-60 s a run here): unet's runlocal is
# tests/test_launch.py's `trained` fixture (and its sweep test makes every run of tiny_sweep),
# nonblind's is tests/test_nonblind_cli.py's, and quickstart's is blind's runlocal, trained here.
RUN_ELSEWHERE = {"unet", "tiny_sweep", "nonblind", "quickstart"}
# Not trained in the suite: each is another runlocal with one setting changed, which the docstring
# test validates point by point as `launch.py sweep` does before training (the ablations: the
# U-Net experiment with another loss, width or training mixture; gopro_unet: gopro_nafnet's real
# pairs with the U-Net). Their parts are trained by the tests of the runs above and tests/train.
NOT_TRAINED = {"ablate_loss", "ablate_width", "ablate_blur_families", "gopro_unet"}


def test_the_default_experiment_is_the_blind_experiment_at_its_runlocal_size():
    """quickstart:runlocal is blind:runlocal (trained here), and the full quickstart is blind's
    two-stage model and training, shortened to fit 10 minutes here."""
    assert cfglib.load_config("quickstart:runlocal") == cfglib.load_config("blind:runlocal")
    quick, blind = cfglib.load_config("quickstart"), cfglib.load_config("blind")
    assert quick.model == blind.model and quick.model.name == "two_stage" and quick.data == blind.data
    assert quick.train.steps < blind.train.steps and quick.eval.noise_levels == blind.eval.noise_levels


# The sweep that tests the sweep machinery in two seeds; every other declared sweep has three.
TWO_SEED_SWEEPS = {"tiny_sweep"}
GOPRO = {"gopro_nafnet", "gopro_unet"}  # real pairs: need a GOPRO_Large tree (manual_dir)
GOPRO_SCENES = (("train", "GOPR0372_07_00", 2), ("train", "GOPR0374_11_00", 2), ("test", "GOPR0384_11_00", 1))


def docstring_commands(text: str) -> list[list[str]]:
    """The ``python launch.py ...`` commands of a docstring, backslash continuations joined."""
    lines = text.replace("\\\n", " ").splitlines()
    commands = [line.split("#")[0] for line in lines if line.strip().startswith("python launch.py")]
    return [shlex.split(command)[2:] for command in commands]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_docstring_commands_and_declared_sweep(name, data_dir):
    module, _, _ = cfglib.load_experiment(name)
    assert module.__doc__ and "Goal:" in module.__doc__, f"{name}: the docstring states no goal"
    commands = {}
    for argv in docstring_commands(module.__doc__):  # each parses, names this experiment, and loads
        args, overrides = cli.parse_command_line(argv)
        if args.command in ("train", "sweep"):
            assert cfglib.resolve_experiment(args.config)[0].stem == name, argv
            cfglib.load_config(args.config, overrides)
        commands.setdefault(args.command, []).append(args)
    assert "train" in commands or "sweep" in commands, f"{name}: the docstring gives no launch command"
    if not hasattr(module, "get_sweep"):
        return
    assert {"sweep", "report"} <= set(commands) and any(a.dry_run for a in commands["sweep"]), \
        f"{name}: the docstring lacks the sweep, its --dry-run or the report command"
    for spec in [name] + ([] if name in RUN_ELSEWHERE else [f"{name}:runlocal"]):
        # Every point's config loads and validates, as launch.py sweep checks them before training.
        runs = sweep.load_sweep(spec, extra_overrides=[f"data.data_dir={data_dir}"])
        assert len({r.name for r in runs}) == len(runs), f"{spec}: two runs share a workdir"
        seeds = {point: sorted(r.seed for r in runs if r.point == point) for point in {r.point for r in runs}}
        assert len(seeds) >= 2 and len({tuple(s) for s in seeds.values()}) == 1, f"{spec}: {seeds}"
        if spec == name:
            expected = [0, 1] if name in TWO_SEED_SWEEPS else [0, 1, 2]
            assert all(s == expected for s in seeds.values()), f"{spec}: expected seeds {expected}: {seeds}"


@pytest.fixture
def gopro_tree(tmp_path, write_image):
    """A tiny fake GOPRO_Large tree (random 40x48 frames): two train scenes, one test pair."""
    make_gopro(tmp_path / "gopro", write_image, scenes=GOPRO_SCENES)
    return tmp_path / "gopro"


@pytest.mark.slow
@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e not in RUN_ELSEWHERE | NOT_TRAINED])
def test_runlocal_trains_end_to_end(name, env, data_dir, tmp_path, request):
    extra = [f"--config.data.manual_dir={request.getfixturevalue('gopro_tree')}"] if name in GOPRO else []
    workdir = tmp_path / "run"
    result = launch_py(env, "train", "--config", f"experiments/{name}.py:runlocal", "--workdir", workdir,
                       f"--config.data.data_dir={data_dir}", *extra, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    check_runlocal_outputs(workdir, paired=name in GOPRO)


@pytest.mark.slow
def test_gopro_tree_without_train_split_fails_before_anything_is_written(env, tmp_path, write_image):
    make_gopro(tmp_path / "gopro", write_image, scenes=GOPRO_SCENES[-1:])  # test/ only
    result = launch_py(env, "train", "--config", "experiments/gopro_unet.py:runlocal",
                       "--workdir", tmp_path / "run", f"--config.data.data_dir={tmp_path / 'tfds'}",
                       f"--config.data.manual_dir={tmp_path / 'gopro'}", timeout=120)
    missing = tmp_path / "gopro" / "GOPRO_Large" / "train"
    assert_usage_error(result, f"no folder {missing}", "Expected layout:", "GOPRO_Large/]train/<scene>/blur/*.png")
    assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()
