"""End-to-end training runs on tiny shapes: each model trains, runs resume exactly, seeds decide."""
import json
import logging

import jax
import numpy as np
import pytest

from jdeblur.models.registry import build_model
from jdeblur.train import loop, optim
from jdeblur.train.checkpoint import Checkpointer
from jdeblur.train.parallel import make_mesh
from jdeblur.train.state import abstract_state
from jdeblur.workdir import load_config, load_trained
from tests.train.tiny_training import params_of, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # TFDS logs a paragraph per build; restored after, since later tests in this worker read absl's records.
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield str(tmp_path_factory.mktemp("tfds"))
    logger.setLevel(level)


def abstract_args(workdir):
    config = load_config(workdir)
    return config, build_model(config.model), optim.make_optimizer(config.optim, config.train.steps)[0]


def losses(workdir):
    return [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def check_run_record(workdir, final):
    """The results of every method, finite parameters, and every file a run promises."""
    assert set(final["results"]) == {"blurred", "wiener", "richardson_lucy", "model"}
    assert all(np.isfinite(v["psnr"]) for v in final["results"].values())
    assert all(np.all(np.isfinite(p)) for p in params_of(workdir))
    for name in ("config.json", "run.json", "metrics.jsonl", "eval.jsonl", "curves.png", "final.json"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "samples").glob("*.png"))
    run = json.loads((workdir / "run.json").read_text())
    assert run["packages"]["jax"] == jax.__version__ and len(run["devices"]) == jax.device_count()


def test_nafnet_trains_and_is_evaluated(tmp_path, data_dir):
    c = tiny_config(data_dir, steps=1, log_every=1, eval_every=1)
    c.model.name, c.model.variant = "nafnet", "tiny"
    c.model.kwargs = dict(width=8, enc_blk_nums=(1,), middle_blk_num=1, dec_blk_nums=(1,))
    check_run_record(tmp_path, loop.train_and_evaluate(c, tmp_path))


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_dir):
    """An uninterrupted 4-step run, shared by the tests that compare against it."""
    workdir = tmp_path_factory.mktemp("whole")
    loop.train_and_evaluate(tiny_config(data_dir), workdir)
    return workdir


def test_unet_run_records_everything(whole_run):
    check_run_record(whole_run, json.loads((whole_run / "final.json").read_text()))


def records(workdir, name) -> list[dict]:
    """The lines of a JSON-lines log without the wall-clock measurements (not results)."""
    timings = ("images_per_s", "data_wait_fraction")
    return [{k: v for k, v in json.loads(line).items() if k not in timings}
            for line in (workdir / name).read_text().splitlines()]


def test_resumed_run_equals_uninterrupted_run(tmp_path, data_dir, whole_run):
    """Stopped at step 1, between the log steps (2, 4), and resumed across the switch to larger patches
    (step 2): every log, line by line, and the parameters equal the uninterrupted run's, bit for bit.
    (Defect: the first line after a resume between log steps averaged only the steps after it.)"""
    parts = tmp_path / "parts"
    assert loop.train_and_evaluate(tiny_config(data_dir), parts, stop_after=1) is None
    assert load_trained(parts, "latest")[3] == 1 and not (parts / "final.json").exists()
    loop.train_and_evaluate(tiny_config(data_dir), parts)
    for a, b in zip(params_of(whole_run), params_of(parts)):
        np.testing.assert_array_equal(a, b)
    assert records(parts, "metrics.jsonl") == records(whole_run, "metrics.jsonl")
    assert [r["step"] for r in records(parts, "metrics.jsonl")] == [2, 4]
    evals = [records(w, "eval.jsonl") for w in (parts, whole_run)]
    assert [(r["step"], r["model"]) for r in evals[0]] == [(r["step"], r["model"]) for r in evals[1]]
    finals = [json.loads((w / "final.json").read_text()) for w in (parts, whole_run)]
    assert finals[0]["results"]["model"] == finals[1]["results"]["model"] and finals[0]["step"] == finals[1]["step"]
    # Every checkpoint carries the input iterator's state beside the train state.
    manager = Checkpointer(parts, read_only=True)
    for step in manager.steps():
        data_state = manager.restore(step, abstract_state(*abstract_args(parts)), make_mesh(1))[1]
        assert data_state and json.dumps(data_state)
    manager.close()


def test_another_seed_gives_other_metrics(tmp_path, data_dir, whole_run):
    c = tiny_config(data_dir, steps=2, eval_every=2)
    c.seed = 1
    loop.train_and_evaluate(c, tmp_path)
    assert losses(tmp_path)[0] != losses(whole_run)[0]


def test_resume_with_another_config_is_refused(data_dir, whole_run):
    with pytest.raises(ValueError, match="train.steps"):
        loop.train_and_evaluate(tiny_config(data_dir, steps=3), whole_run)


def test_forget_records_after_drops_later_steps_and_a_torn_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [{"step": s, "loss": 1.0 / s} for s in (2, 4, 6)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 8, "lo')
    loop.forget_records_after(log, 4)
    assert [json.loads(line) for line in log.read_text().splitlines()] == records[:2]
    loop.forget_records_after(log, 0)
    assert log.read_text() == ""
    loop.forget_records_after(tmp_path / "missing.jsonl", 3)
    assert not (tmp_path / "missing.jsonl").exists()


def test_dead_leaves_replace_a_share_of_targets_and_follow_each_image(rng):
    c = tiny_config(None)
    c.data.dead_leaves.update(dict(fraction=0.5, num_disks=16, radius_range=(1.0, 4.0)))
    side = c.data.patch_size + 2 * loop.input_margin(c)
    patches = rng.integers(0, 256, (16, side, side, 3), dtype=np.uint8)
    keys = jax.random.split(jax.random.key(rng.integers(2**31)), len(patches))
    prepare = jax.jit(loop.make_prepare(c))
    inputs, targets = prepare(keys, {"sharp": patches})
    blurred, sharp = inputs["blurred"], targets["image"]
    plain = patches[:, 2:-2, 2:-2] / 255.0  # the 'valid' blur's targets without substitution
    replaced = ~np.all(np.isclose(sharp, plain), axis=(1, 2, 3))
    assert 0 < replaced.sum() < len(patches)
    # Substitution draws from the image's own key: the same however the batch is cut.
    for i in np.flatnonzero(replaced)[:1].tolist() + np.flatnonzero(~replaced)[:1].tolist():
        one_inputs, one_targets = prepare(keys[i:i + 1], {"sharp": patches[i:i + 1]})
        np.testing.assert_allclose(one_targets["image"][0], sharp[i], atol=1e-6)
        np.testing.assert_allclose(one_inputs["blurred"][0], blurred[i], atol=1e-5)
        np.testing.assert_allclose(one_inputs["kernel"][0], inputs["kernel"][i], atol=1e-7)
    c.data.dead_leaves.fraction = 0.0
    np.testing.assert_allclose(loop.make_prepare(c)(keys, {"sharp": patches})[1]["image"], plain, atol=1e-6)
