"""launch.py as a user runs it: subprocesses, exit codes, printed tables, files written, one-line errors.

One runlocal training is shared by the tests that need a trained workdir (module fixture). The
subprocesses see one CPU device (as a user's machine; conftest simulates 8 for this process), a
data directory and a JAX compilation cache under pytest's temporary folder, shared by the session
(the ``env`` and ``data_dir`` fixtures of tests/conftest.py): nothing is written to the user's
home, and later runs reuse the programs earlier ones compiled.
"""
import csv
import datetime
import errno
import json
import pathlib
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from jdeblur import cli
from jdeblur.config import REPO
from jdeblur.png import decode_png
from jdeblur.train.checkpoint import best_step
from jdeblur.train.logger import read_jsonl
from tests.launching import UNET_LOCAL, assert_usage_error, launch_py, usage_error_in_process
from tests.photo_files import declared_png, write_sample_files
from tests.processes import hold_in_another_process, wait_until_dead
from tests.train.checkpoint_damage import flip_middle_byte, largest_array_file


def tree(path: pathlib.Path) -> dict:
    """Every file under ``path`` with its bytes (empty if ``path`` does not exist)."""
    files = sorted(path.rglob("*")) if path.exists() else []
    return {p.relative_to(path): p.read_bytes() for p in files if p.is_file()}


@pytest.fixture
def unwritable(tmp_path):
    """A folder path that cannot be created: under a read-only folder, or under a regular file for root
    (whom permissions do not stop)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        (locked / "probe").mkdir()
    except PermissionError:
        yield locked / "out"
    else:
        (locked / "probe").rmdir()
        blocker = tmp_path / "file.txt"
        blocker.write_text("a file, not a folder")
        yield blocker / "out"
    finally:
        locked.chmod(0o700)


# --- the command line, without training ---

def test_help_of_every_subcommand(env):
    result = launch_py(env, "--help", timeout=60)
    assert result.returncode == 0 and all(c in result.stdout for c in cli.COMMANDS)
    for command in cli.COMMANDS:
        result = launch_py(env, command, "--help", timeout=60)
        assert result.returncode == 0 and f"usage: launch.py {command}" in result.stdout, result.stderr


def test_no_arguments_train_the_default_experiment_into_a_fresh_workdir(tmp_path, monkeypatch):
    args, overrides = cli.parse_command_line([])
    assert (args.command, args.config, args.workdir, overrides) == ("train", "quickstart", None, [])
    args, overrides = cli.parse_command_line(["--debug", "--config.train.steps=5", "--workdir", "w"])
    assert (args.command, args.config, args.workdir, args.debug) == ("train", "quickstart", "w", True)
    assert overrides == ["train.steps=5"]
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    first = cli.default_workdir("quickstart", root=tmp_path, now=now)
    assert first == tmp_path / "quickstart-20260102-030405"
    first.mkdir()
    assert cli.default_workdir("experiments/quickstart.py:runlocal", root=tmp_path, now=now).name == \
        "quickstart-20260102-030405-2"
    called = []
    monkeypatch.setitem(cli.COMMANDS, "train", lambda args, overrides: called.append(args) or 0)
    assert cli.main([]) == 0 and called[0].config == "quickstart" and called[0].workdir is None


def test_no_subcommand_validates_before_creating_a_workdir(env):
    before = sorted((REPO / "runs").glob("*")) if (REPO / "runs").exists() else []
    result = launch_py(env, "--config.model.name=resnet", timeout=120)
    assert_usage_error(result, "config.model.name='resnet'", "nafnet", "unet")
    assert (sorted((REPO / "runs").glob("*")) if (REPO / "runs").exists() else []) == before


TRAIN_ERRORS = {
    "unknown experiment": (["--config", "nosuch"], ["'nosuch'", "valid names:", "quickstart"]),
    "unknown variant": (["--config", "quickstart:huge"], ["'huge'", "runlocal"]),
    "misspelt field": (["--config.train.stpes=3"], ["train.stpes", "did you mean train.steps"]),
    "wrong type": (["--config.train.steps=ten"], ["train.steps=ten", "expected a value of type int"]),
    "bad value": (["--config.train.global_batch=0"], ["config.train.global_batch", "> 0"]),
    "unknown model": (["--config.model.name=resnet"], ["'resnet'", "valid models:", "nafnet", "unet", "unfolded"]),
    "unknown model variant": (["--config.model.variant=huge"], ["'huge'", "valid variants:", "tiny"]),
    # Defect: these wrote config.json, run.json and checkpoints/, then failed with a TypeError (exit 1).
    "model width 0": (["--config.model.kwargs={{'width': 0}}"], ["config.model.kwargs.width=0"]),
    "model width 'a'": (["--config.model.kwargs={{'width': 'a'}}"], ["config.model.kwargs.width='a'", "expected int"]),
    "unknown convention": (["--config.eval.convention=y"], ["config.eval", "basicsr_y"]),
    "folder dataset without folder": (["--config.data.name=image_folder"], ["manual_dir", "Expected layout:"]),
    "missing dataset folder": (["--config.data.name=image_folder", "--config.data.manual_dir={tmp}/photos"],
                               ["{tmp}/photos does not exist", "Expected layout:", "SOURCE/train/"]),
}


@pytest.mark.parametrize("case", TRAIN_ERRORS)
def test_train_bad_input_fails_before_writing_anything(tmp_path, capsys, case):
    # In this process (a subprocess costs 3-5 s of imports per case): the same main(), exit code and
    # stderr; the tests above and below check the same path through a real subprocess.
    args, fragments = TRAIN_ERRORS[case]
    args = [a.format(tmp=tmp_path) for a in args]
    config = [] if "--config" in args else ["--config", UNET_LOCAL]
    line = usage_error_in_process(capsys, "train", *config, "--workdir", tmp_path / "run",
                                  f"--config.data.data_dir={tmp_path / 'tfds'}", *args)
    assert all(f.format(tmp=tmp_path) in line for f in fragments), (line, fragments)
    assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


def test_train_unwritable_workdir(env, tmp_path, unwritable):
    result = launch_py(env, "train", "--config", UNET_LOCAL, "--workdir", unwritable,
                       f"--config.data.data_dir={tmp_path / 'tfds'}", timeout=120)
    assert_usage_error(result, f"--workdir {unwritable}", "expected a folder")
    assert not (tmp_path / "tfds").exists()


def test_debug_shows_the_traceback(env, tmp_path):
    result = launch_py(env, "--debug", "train", "--config", UNET_LOCAL, "--workdir", tmp_path / "run",
                       "--config.model.name=resnet", timeout=120)
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


@pytest.mark.parametrize("command", [["eval"], ["deblur", "--input", "x.png", "--output", "out"]])
def test_eval_and_deblur_need_a_trained_workdir(env, tmp_path, command):
    result = launch_py(env, *command, "--workdir", tmp_path / "nothing", timeout=120)
    assert_usage_error(result, f"--workdir {tmp_path / 'nothing'}", "expected the workdir of a `launch.py train` run")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.json").write_text("{}")
    result = launch_py(env, *command, "--workdir", untrained, timeout=120)
    assert_usage_error(result, f"--workdir {untrained}", "no checkpoints")
    assert tree(untrained).keys() == {pathlib.Path("config.json")} and not (REPO / "out").exists()


def test_sweep_report_and_train_config_errors(tmp_path, capsys):
    cases = [
        (["sweep", "--config", "nosuch", "--root", tmp_path / "sweep"], ["'nosuch'", "valid names:"]),
        (["sweep", "--config", UNET_LOCAL, "--root", tmp_path / "sweep"],
         ["declares no sweep", "get_sweep"]),
        (["report", "--root", tmp_path / "nothing"], [str(tmp_path / "nothing"), "no finished runs"]),
        (["train", "--config", UNET_LOCAL, "--workdir", tmp_path / "run",
          f"--config.data.data_dir={tmp_path}", "--config.train.nonfinite=sometimes"],
         ["config.train.nonfinite", "'skip'", "'sometimes'"]),
    ]
    for argv, fragments in cases:
        line = usage_error_in_process(capsys, *argv)
        assert all(f in line for f in fragments), (line, fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_config_files_that_raise_and_truncated_json_files_are_the_users_errors(tmp_path, capsys):
    (tmp_path / "broken_import.py").write_text("import numpy as np\nnp.nosuchthing\n")
    (tmp_path / "broken_config.py").write_text("def get_config(arg=None):\n    return 1 / 0\n")
    for name, fragments in (("broken_import.py", ["running the experiment file failed", "AttributeError"]),
                            ("broken_config.py", ["get_config(None) failed", "ZeroDivisionError"])):
        line = usage_error_in_process(capsys, "train", "--config", tmp_path / name, "--workdir", tmp_path / "run")
        assert str(tmp_path / name) in line and all(f in line for f in fragments), line
    assert not (tmp_path / "run").exists()
    workdir = tmp_path / "cut"
    workdir.mkdir()
    (workdir / "config.json").write_text('{"model": {"name": "un')  # a disk that filled up mid-write, by hand
    line = usage_error_in_process(capsys, "eval", "--workdir", workdir)
    assert f"{workdir / 'config.json'}: not valid JSON" in line
    (tmp_path / "sweep" / "a,seed=0").mkdir(parents=True)
    (tmp_path / "sweep" / "a,seed=0" / "final.json").write_text('{"step": 12, "resu')
    line = usage_error_in_process(capsys, "report", "--root", tmp_path / "sweep")
    assert f"{tmp_path / 'sweep' / 'a,seed=0' / 'final.json'}: not valid JSON" in line


def test_a_bug_exits_1_naming_its_traceback_file_and_disk_full_exits_2_without_library_noise(tmp_path, capsys,
                                                                                               monkeypatch):
    """The launcher's mapping, in process: a simulated internal bug, then a disk that fills up while a library
    logs warnings and a background thread dies."""
    import logging
    import threading

    from jdeblur import sweep

    root = tmp_path / "sweep"
    root.mkdir()

    def bug(root):
        return {}["psnr"]

    monkeypatch.setattr(sweep, "write_report", bug)
    assert cli.main(["report", "--root", str(root)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    crash = next(root.glob("crash-*.txt"))
    assert lines == [f"error: a bug in jdeblur: KeyError: 'psnr' (the full traceback is in {crash}; please report "
                     f"it with that file)"]
    assert "in bug" in crash.read_text() and "Traceback" in crash.read_text()

    def disk_full(root):
        logging.getLogger("absl").warning("orbax: an asynchronous save failed")
        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join()
        raise OSError(errno.ENOSPC, "No space left on device", str(pathlib.Path(root) / "report.md"))

    monkeypatch.setattr(sweep, "write_report", disk_full)
    line = usage_error_in_process(capsys, "report", "--root", root)
    assert line == f"error: {root / 'report.md'}: no space left on the device; free some space there, or choose a " \
                   f"folder on another device"
    assert len(list(root.glob("crash-*.txt"))) == 1  # none for the user's error


@pytest.mark.slow
def test_train_source_folder_with_a_truncated_jpeg_fails_before_the_workdir(env, tmp_path, rng):
    source = tmp_path / "photos" / "train"
    source.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        iio.imwrite(source / name, rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    iio.imwrite(tmp_path / "whole.jpg", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), extension=".jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (source / "c.jpg").write_bytes(data[:len(data) // 2])
    result = launch_py(env, "train", "--config", UNET_LOCAL, "--workdir", tmp_path / "run",
                       f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.name=image_folder",
                       f"--config.data.manual_dir={tmp_path / 'photos'}", timeout=120)
    # The dataset build shows its progress bars before the error: the error is the last line.
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.splitlines()[-1].split("\r")[-1]
    assert last.startswith("error: ") and str(source / "c.jpg") in last and "truncated" in last, last
    assert not (tmp_path / "run").exists()


# --- a trained run, shared ---

@pytest.fixture(scope="module")
def trained(env, data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained") / "run"
    result = launch_py(env, "train", "--config", UNET_LOCAL, "--workdir", workdir,
                       f"--config.data.data_dir={data_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


@pytest.mark.slow
def test_train_end_to_end(trained, data_dir):
    from jdeblur import config as cfglib

    workdir, result = trained
    config = json.loads((workdir / "config.json").read_text())
    expected = cfglib.load_config(UNET_LOCAL, [f"data.data_dir={data_dir}"])
    assert config == json.loads(expected.to_json())  # the full config, overrides applied
    train = config["train"]
    assert f"split test, step {train['steps']} (metric convention: default)" in result.stdout
    for method in ("blurred input", "Wiener, true kernel", "Richardson-Lucy, true kernel", "model (blind)"):
        assert f"| {method}" in result.stdout
    assert f"workdir {workdir}" in result.stdout
    run = json.loads((workdir / "run.json").read_text())
    assert run["packages"]["jax"] and run["packages"]["orbax-checkpoint"] and run["python"]
    assert run["backend"] == "cpu" and len(run["devices"]) == 1 and run["process_count"] == 1
    if (REPO / ".git").exists():
        assert run["git_commit"] and len(run["git_commit"].split("+")[0]) == 40

    def steps_every(interval):
        return sorted({*range(interval, train["steps"] + 1, interval), train["steps"]})

    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == steps_every(train["log_every"]) and all(r["loss"] > 0 for r in logged)
    evals = [json.loads(line) for line in (workdir / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == steps_every(train["eval_every"]) and evals[-1]["convention"] == "default"
    final = json.loads((workdir / "final.json").read_text())
    assert set(final["results"]) == {"blurred", "wiener", "richardson_lucy", "model"}
    assert final["results"]["model"] == evals[-1]["model"] and final["step"] == train["steps"]
    assert (workdir / "curves.png").stat().st_size > 1000
    assert sorted(p.name for p in (workdir / "samples").glob("*.png")) == [
        f"step_{step:07d}.png" for step in steps_every(train["eval_every"])]
    assert train["steps"] in [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]


@pytest.mark.slow
def test_eval_prints_and_writes_the_table_under_a_named_convention(env, trained):
    workdir, _ = trained
    for convention in ("default", "basicsr_y"):
        args = [] if convention == "default" else ["--convention", convention]
        result = launch_py(env, "eval", "--workdir", workdir, *args, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"(metric convention: {convention})" in result.stdout and "| model (blind) |" in result.stdout
        markdown = (workdir / f"eval_test_{convention}.md").read_text()
        assert f"metric convention: {convention}" in markdown
        with (workdir / f"eval_test_{convention}.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [r["method"] for r in rows] == ["blurred", "wiener", "richardson_lucy", "model"]
        assert {r["convention"] for r in rows} == {convention}
        assert f"{float(rows[-1]['psnr']):.2f}" in markdown


@pytest.mark.slow
def test_deblur_a_folder_of_mixed_photos(env, trained, tmp_path, rng):
    workdir, _ = trained
    arrays = write_sample_files(tmp_path / "in", rng)
    (tmp_path / "in" / "notes.txt").write_text("not an image: skipped")
    result = launch_py(env, "deblur", "--workdir", workdir, "--input", tmp_path / "in", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(arrays)} image(s) deblurred" in result.stdout and "deblur: 100%" in result.stderr
    expected = {name.rsplit(".", 1)[0] + ".png" for name in arrays}
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected  # no temporary files left
    for name, source in arrays.items():
        result_path = tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png")
        restored = decode_png(result_path.read_bytes())  # exact, see tests/test_photos.py
        assert restored.shape == source.shape and restored.dtype == source.dtype, name
        if source.ndim == 3 and source.shape[-1] in (2, 4):
            np.testing.assert_array_equal(restored[..., -1], source[..., -1], err_msg=f"{name}: alpha changed")


@pytest.mark.slow
def test_deblur_a_glob_and_a_single_file(env, trained, tmp_path, rng):
    workdir, _ = trained
    write_sample_files(tmp_path / "in", rng)
    result = launch_py(env, "deblur", "--workdir", workdir, "--input", tmp_path / "in" / "*.jp*g",
                       "--output", tmp_path / "globbed")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "globbed").iterdir()) == ["gray_photo.png", "photo.png"]
    result = launch_py(env, "deblur", "--workdir", workdir, "--input", tmp_path / "in" / "rgba.png",
                       "--output", tmp_path / "single")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "single").iterdir()] == ["rgba.png"]


# --- kill -9 and rerun: the uninterrupted result (kill points made exact by JDEBLUR_FAULT) ---

TIMINGS = ("images_per_s", "data_wait_fraction")  # wall-clock measurements, not results


def checkpoint_folders(workdir) -> tuple[list[int], list[str]]:
    """(committed steps, other folders: orbax's temporary ones of saves in flight)."""
    names = [p.name for p in (workdir / "checkpoints").iterdir()]
    return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if not n.isdigit())


def run_results(workdir) -> dict:
    """Everything a run computes: its whole final train state, training log, evaluations, final table."""
    from jdeblur.models.registry import build_model
    from jdeblur.train import optim
    from jdeblur.train.checkpoint import Checkpointer
    from jdeblur.train.parallel import make_mesh
    from jdeblur.train.state import abstract_state
    from jdeblur.workdir import load_config

    config = load_config(workdir)
    model = build_model(config.model)
    abstract = abstract_state(config, model, optim.make_optimizer(config.optim, config.train.steps)[0])
    manager = Checkpointer(workdir, read_only=True)
    state, data_state, _ = manager.restore(config.train.steps, abstract, make_mesh(1))
    manager.close()
    logged = [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
              for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (workdir / "eval.jsonl").read_text().splitlines()]
    final = json.loads((workdir / "final.json").read_text())
    return {"state": jax.device_get(state), "data": data_state, "metrics": logged,
            "eval": [(r["step"], r["model"]) for r in evals],
            "final": (final["step"], final["results"]["model"]),
            "baselines": [r[m] for r in evals for m in r if m not in ("step", "convention", "model")]}


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_result(env, data_dir, trained, tmp_path):
    """The runlocal run (checkpoints at 4, 6 (evaluated), 8, 12; the latest 2 and the best kept), killed
    during step 5 and during the save of step 8, its step-6 checkpoint then corrupted, and run to the
    end: the `trained` run, bit for bit."""
    from jdeblur.train.loop import FAULT_ENV

    def train(fault=None):
        return launch_py({**env, FAULT_ENV: fault} if fault else env, "train", "--config", UNET_LOCAL,
                         "--workdir", workdir, f"--config.data.data_dir={data_dir}")

    workdir = tmp_path / "run"
    result = train("kill_after_step:5")
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert checkpoint_folders(workdir)[0] in ([], [4])  # the step-4 save may not have committed yet
    result = train("kill_during_save:8")
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    committed, in_flight = checkpoint_folders(workdir)
    # Step 8, once committed, would replace step 4 (6 stays as the best): 4 is still there, whole.
    assert committed == [4, 6] and [n for n in in_flight if n.startswith("8.")], (committed, in_flight)
    assert '"step": 8' in (workdir / "metrics.jsonl").read_text()  # logged before the kill, to be dropped
    # And the disk corrupted the newest checkpoint: resume from step 4, with a warning.
    flip_middle_byte(largest_array_file(workdir / "checkpoints" / "6"))
    result = train()
    assert result.returncode == 0, result.stderr[-3000:]
    # A flipped byte either decodes to other values (the checksums differ: 'is corrupt') or breaks
    # the file's decoding ('is unreadable (...)'): both are corruption, and both fall back.
    assert re.search(f"warning: checkpoint {re.escape(str(workdir / 'checkpoints' / '6'))} is (corrupt|unreadable)",
                     result.stderr), result.stderr[-3000:]
    assert "resuming from step 4" in result.stdout
    # The same checkpoints kept as by the uninterrupted run, the corrupt one set aside, and orbax's
    # temporary folder cleaned up.
    assert checkpoint_folders(workdir) == (checkpoint_folders(trained[0])[0], ["6.corrupt"])

    expected, actual = run_results(trained[0]), run_results(workdir)
    jax.tree.map(np.testing.assert_array_equal, expected["state"], actual["state"])
    assert actual["metrics"] == expected["metrics"] and [r["step"] for r in actual["metrics"]] == [4, 8, 12]
    for part in ("data", "eval", "final"):
        assert actual[part] == expected[part], part
    # The classical baselines are recomputed by each process, and XLA:CPU's SSIM of the same image
    # varies in the last bit between processes (measured: 0.8105458 / 0.8105456, no cache involved).
    for a, b in zip(actual["baselines"], expected["baselines"], strict=True):
        assert a == pytest.approx(b, rel=1e-6)


def wait_for(condition, what: str, timeout_s: float = 300.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def trained_steps(workdir) -> int:
    return json.loads((workdir / "config.json").read_text())["train"]["steps"]


def training_records(workdir) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
            for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_second_trainer_on_a_workdir_is_refused_and_readers_still_work(env, data_dir, trained, tmp_path):
    """Two real `train` processes on one workdir: the second exits 2 naming the workdir and the first's PID,
    and the first (paused meanwhile, so that the order is certain) ends as the uninterrupted run did. The
    parameters `eval` and `deblur` read load while another process holds the lock."""
    from jdeblur.train import workdir_lock
    from jdeblur.workdir import load_trained

    workdir = tmp_path / "run"
    command = [sys.executable, "launch.py", "train", "--config", UNET_LOCAL, "--workdir", str(workdir),
               f"--config.data.data_dir={data_dir}"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: workdir_lock.holder(workdir) == first.pid, "the first trainer to take the lock")
        first.send_signal(signal.SIGSTOP)
        second = launch_py(env, *command[2:], timeout=300)
        assert_usage_error(second, f"--workdir {workdir}: process {first.pid} is training in it")
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-3000:]
    finally:
        first.kill()
    assert training_records(workdir) == training_records(trained[0])
    assert [r["step"] for r in read_jsonl(workdir / "eval.jsonl")] == [r["step"] for r in read_jsonl(
        trained[0] / "eval.jsonl")]

    holder = hold_in_another_process(workdir)  # what eval and deblur read, they read without the lock
    try:
        assert load_trained(workdir, "latest")[3] == trained_steps(trained[0])
    finally:
        holder.kill()
        holder.wait()


def make_bad_inputs(tmp_path, rng) -> dict:
    """Case name -> (extra arguments, fragments of the expected error); files made under tmp_path."""
    good = tmp_path / "good"
    good.mkdir()
    iio.imwrite(good / "a.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    iio.imwrite(good / "whole.jpg", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), extension=".jpg")
    with_text = tmp_path / "with_text"
    with_text.mkdir()
    iio.imwrite(with_text / "b.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    (with_text / "notes.png").write_text("text in a file named like an image")
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (good / "whole.jpg").read_bytes()
    (truncated / "half.jpg").write_bytes(data[:len(data) // 2])
    iio.imwrite(truncated / "c.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    clash = tmp_path / "clash"
    clash.mkdir()
    iio.imwrite(clash / "a.png", np.zeros((4, 4), np.uint8))
    iio.imwrite(clash / "a.jpg", np.zeros((8, 8), np.uint8), extension=".jpg")
    (tmp_path / "empty").mkdir()
    huge = tmp_path / "huge"
    huge.mkdir()
    iio.imwrite(huge / "d.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    (huge / "panorama.png").write_bytes(declared_png(20000, 10000, 8, 3))  # 200 Mpixel, 0.6 GB as RGB
    return {
        "missing file": ([tmp_path / "nope.png"], [f"--input {tmp_path / 'nope.png'}", "no such file or folder"]),
        "folder without images": ([tmp_path / "empty"], [f"--input {tmp_path / 'empty'}", "no image files"]),
        "non-image file": ([with_text], [str(with_text / "notes.png"), "not an image file",
                                         "expected a complete image file"]),
        "truncated JPEG": ([truncated], [str(truncated / "half.jpg"), "truncated", "expected a complete image file"]),
        "two inputs, one output name": ([clash], ["a.jpg", "a.png", "would both be written", "distinct base names"]),
        "image too large": ([huge], [str(huge / "panorama.png"), "too large to deblur in memory", "at most"]),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing file", "folder without images", "non-image file", "truncated JPEG",
                                  "two inputs, one output name", "image too large"])
def test_deblur_bad_input_writes_nothing(trained, tmp_path, capsys, rng, case):
    workdir, _ = trained
    inputs, fragments = make_bad_inputs(tmp_path, rng)[case]
    line = usage_error_in_process(capsys, "deblur", "--workdir", workdir, "--input", *inputs,
                                  "--output", tmp_path / "out")
    assert all(f in line for f in fragments), (line, fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_and_deblur_bad_arguments_and_a_corrupt_checkpoint(trained, tmp_path, capsys, rng):
    workdir, _ = trained
    iio.imwrite(tmp_path / "a.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(workdir, corrupt)
    best = corrupt / "checkpoints" / str(best_step(corrupt))
    flip_middle_byte(largest_array_file(best))
    tables = tree(corrupt)  # including those of earlier evaluations, if any
    out = tmp_path / "out"
    cases = [
        (["eval", "--workdir", workdir, "--convention", "ycbcr"], ["--convention", "'ycbcr'", "basicsr_y"]),
        (["eval", "--workdir", workdir, "--checkpoint", "999"], ["--checkpoint 999", "expected best"]),
        (["eval", "--workdir", workdir, "--split", "validation"], ["'validation'", "has splits", "test"]),
        (["eval", "--workdir", corrupt], [f"checkpoint {best} is corrupt", "expected a checkpoint"]),
        (["deblur", "--workdir", corrupt, "--input", tmp_path / "a.png", "--output", out],
         [f"{best} is corrupt"]),
        (["deblur", "--workdir", workdir, "--input", tmp_path / "a.png", "--output", out, "--tile", "2048"],
         ["--tile 2048", "--max-pixels 1048576", "at most 1024"]),
    ]
    for argv, fragments in cases:
        line = usage_error_in_process(capsys, *argv)
        assert all(f in line for f in fragments), (line, fragments)
    assert not out.exists() and tree(corrupt) == tables


@pytest.mark.slow
def test_deblur_bad_output_folder_writes_nothing(env, trained, tmp_path, rng, unwritable):
    workdir, _ = trained
    iio.imwrite(tmp_path / "a.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    result = launch_py(env, "deblur", "--workdir", workdir, "--input", tmp_path / "a.png", "--output", unwritable,
                       timeout=120)
    assert_usage_error(result, f"--output {unwritable}", "expected a folder")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"an earlier result")
    before = tree(out)
    result = launch_py(env, "deblur", "--workdir", workdir, "--input", tmp_path / "a.png", "--output", out,
                       timeout=120)
    assert_usage_error(result, f"--output {out}", "already exist", "--overwrite")
    assert tree(out) == before


# --- sweeps ---

@pytest.mark.slow
def test_sweep_two_points_two_seeds_then_skip_dry_run_and_report(env, data_dir, tmp_path):
    root = tmp_path / "sweep"
    sweep = ["sweep", "--config", "experiments/tiny_sweep.py", "--root", root, f"--config.data.data_dir={data_dir}"]
    names = ["augmented,seed=0", "augmented,seed=1", "plain,seed=0", "plain,seed=1"]
    result = launch_py(env, *sweep, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split("] ")[1] for line in result.stdout.splitlines() if line.startswith("[")] == [
        f"{name}: training in {root / name}" for name in names]
    finals = {name: json.loads((root / name / "final.json").read_text()) for name in names}

    result = launch_py(env, *sweep, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished, skipped") == 4 and "training" not in result.stdout

    result = launch_py(env, *sweep, "--dry-run", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = [shlex.split(line) for line in result.stdout.strip().splitlines()]
    assert len(commands) == 4
    for command, name in zip(commands, names):
        assert command[:5] == ["python", "launch.py", "train", "--config", "experiments/tiny_sweep.py"]
        assert command[5:7] == ["--workdir", str(root / name)] and f"--config.seed={name[-1]}" in command

    result = launch_py(env, "report", "--root", root, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (root / "report.md").read_text()
    assert "mean ± standard deviation over seeds" in markdown and "convention `default`" in markdown
    with (root / "report.csv").open() as f:
        rows = {row["point"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"augmented", "plain"} and (root / "report.png").stat().st_size > 1000
    for point, row in rows.items():
        psnrs = [finals[f"{point},seed={seed}"]["results"]["model"]["psnr"] for seed in (0, 1)]
        assert psnrs[0] != psnrs[1]  # the seeds made different runs
        assert row["seeds"] == "2" and row["convention"] == "default"
        assert float(row["model/psnr"]) == pytest.approx(statistics.fmean(psnrs))
        assert float(row["model/psnr/std"]) == pytest.approx(statistics.stdev(psnrs))
        # Every seed is scored on the same inputs (eval.seed): the input's spread is 0.
        assert float(row["blurred/psnr/std"]) == 0.0 and float(row["wiener/psnr/std"]) == 0.0
        assert f"| {point} | 2 |" in markdown and f"{statistics.fmean(psnrs):.2f} ± {statistics.stdev(psnrs):.2f}" \
            in markdown


@pytest.mark.slow
def test_kill_9_of_a_sweep_ends_its_running_train(env, data_dir, tmp_path):
    from jdeblur.train import workdir_lock
    root = tmp_path / "sweep"
    sweep = subprocess.Popen([sys.executable, "launch.py", "sweep", "--config", "experiments/tiny_sweep.py", "--root",
                              str(root), f"--config.data.data_dir={data_dir}"], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        trainer = wait_for(lambda: workdir_lock.holder(root / "augmented,seed=0"), "the sweep's first run to train")
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
        assert wait_until_dead(trainer), f"the sweep's run {trainer} outlived the sweep"
    finally:
        sweep.kill()
