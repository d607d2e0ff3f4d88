"""End-to-end training runs on tiny shapes: each model trains, runs resume exactly, seeds decide."""
import json
import logging

import jax
import numpy as np
import pytest

from jdeblur.train import loop
from jdeblur.train.defaults import base_config
from jdeblur.workdir import load_trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    logging.getLogger("absl").setLevel(logging.ERROR)
    return str(tmp_path_factory.mktemp("tfds"))


def tiny_config(data_dir, **train):
    c = base_config()
    c.model.name, c.model.variant = "unet", "tiny"
    c.data.data_dir = data_dir
    c.data.patch_size = 16
    c.data.read_threads = 1
    c.degrade.blur.size = 5
    c.degrade.blur.families = ("gaussian", "linear_motion")
    c.degrade.blur.weights = (1.0, 1.0)
    c.degrade.blur.gaussian.sigma = (0.5, 1.0)
    c.degrade.blur.linear_motion.length = (2.0, 5.0)
    c.train.update(dict(steps=4, global_batch=8, log_every=2, eval_every=4, checkpoint_every=2, progress=False))
    c.train.update(train)
    c.eval.update(dict(max_images=1, samples=1, wiener_balances=(1e-2,), rl_iterations=2, max_pixels=128 * 128))
    return c


def params_of(workdir, which="latest"):
    return jax.tree.leaves(load_trained(workdir, which)[2])


def losses(workdir):
    return [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model, variant", [("unet", "tiny"), ("nafnet", "tiny")])
def test_one_step_of_each_model(tmp_path, data_dir, model, variant):
    c = tiny_config(data_dir, steps=1, log_every=1, eval_every=1)
    c.model.name, c.model.variant = model, variant
    final = loop.train_and_evaluate(c, tmp_path)
    assert set(final["results"]) == {"blurred", "wiener", "richardson_lucy", "model"}
    assert all(np.isfinite(v["psnr"]) for v in final["results"].values())
    assert all(np.all(np.isfinite(p)) for p in params_of(tmp_path))
    for name in ("config.json", "run.json", "metrics.jsonl", "eval.jsonl", "curves.png", "final.json"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "samples").glob("*.png"))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["packages"]["jax"] == jax.__version__ and len(run["devices"]) == jax.device_count()


def test_resumed_run_equals_uninterrupted_run(tmp_path, data_dir):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    loop.train_and_evaluate(tiny_config(data_dir), whole)
    assert loop.train_and_evaluate(tiny_config(data_dir), parts, stop_after=2) is None
    assert not (parts / "final.json").exists()
    loop.train_and_evaluate(tiny_config(data_dir), parts)
    for a, b in zip(params_of(whole), params_of(parts)):
        np.testing.assert_array_equal(a, b)
    assert losses(whole) == losses(parts)
    # Every checkpoint carries the input iterator's state beside the train state.
    for step_dir in (parts / "checkpoints").glob("[0-9]*"):
        assert json.loads((step_dir / "data" / "metadata").read_text()) if (step_dir / "data" / "metadata").exists() \
            else any((step_dir / "data").iterdir())


def test_same_seed_same_metrics_other_seed_others(tmp_path, data_dir):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        c = tiny_config(data_dir, steps=2, eval_every=2)
        c.seed = seed
        loop.train_and_evaluate(c, tmp_path / name)
        runs[name] = losses(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_resume_with_another_config_is_refused(tmp_path, data_dir):
    loop.train_and_evaluate(tiny_config(data_dir, steps=2, eval_every=2), tmp_path)
    with pytest.raises(ValueError, match="train.steps"):
        loop.train_and_evaluate(tiny_config(data_dir, steps=3, eval_every=2), tmp_path)
