"""Tests of the evaluation's inputs: per-family evaluation items and the cached classical baselines."""
import ml_collections
import numpy as np

from jdeblur.physics.kernel_mixture import FAMILIES
from jdeblur.train import evaluate
from jdeblur.train.defaults import base_config


def experiment(folder_config, small_degrade_config, families=()):
    config = base_config()
    config.data, config.degrade = folder_config, small_degrade_config
    config.eval.blur_families = families
    return config


def test_eval_items_score_every_image_under_each_requested_family(folder_config, small_degrade_config):
    mixed = evaluate.make_eval_items(experiment(folder_config, small_degrade_config), "test")
    assert [item["name"] for item in mixed] == ["test/img0.png", "test/img1.png", "test/img2.png"]
    per_family = evaluate.make_eval_items(experiment(folder_config, small_degrade_config, ("disk", "gaussian")),
                                          "test", max_images=2)
    assert [(item["name"], FAMILIES[int(item["family"])]) for item in per_family] == [
        ("test/img0.png", "disk"), ("test/img1.png", "disk"),
        ("test/img0.png", "gaussian"), ("test/img1.png", "gaussian")]
    for item in per_family:
        np.testing.assert_array_equal(item["sharp"], mixed[int(item["name"][-5])]["sharp"])


def test_every_seed_is_scored_on_the_eval_seeds_draws(folder_config, small_degrade_config):
    def kernels(config):
        return [np.asarray(item["kernel"]) for item in evaluate.make_eval_items(config, "test")]

    config = experiment(folder_config, small_degrade_config, ("disk",))
    config.eval.draws = 2
    reference = kernels(config)
    assert len(reference) == 6
    config.seed = 5
    np.testing.assert_array_equal(kernels(config), reference)
    config.eval.seed = 1
    assert not any(np.array_equal(a, b) for a, b in zip(kernels(config), reference))
    # A workdir's config from before eval.seed: its eval set came from the experiment's seed.
    old = ml_collections.ConfigDict(config.to_dict())
    del old.eval["seed"]
    config.eval.seed = 5
    np.testing.assert_array_equal(kernels(old), kernels(config))
    old.seed = 0
    np.testing.assert_array_equal(kernels(old), reference)


def test_baselines_are_cached_and_a_torn_cache_is_computed_again(tmp_path, rng, monkeypatch):
    items = [{"name": "a", "blurred": rng.random((8, 8, 3), np.float32), "sharp": rng.random((8, 8, 3), np.float32)}]
    eval_cfg = ml_collections.ConfigDict({"wiener_balances": (0.01,), "rl_iterations": 3})
    computed = []

    def baseline_scores(items, eval_cfg, convention, methods):
        computed.append(len(items))
        return {"blurred": [{"psnr": 20.0 + len(computed)}]}

    monkeypatch.setattr(evaluate, "baseline_scores", baseline_scores)
    cache = tmp_path / "baselines.json"
    first = evaluate.cached_baseline_scores(items, eval_cfg, "default", cache)
    assert evaluate.cached_baseline_scores(items, eval_cfg, "default", cache) == first and computed == [1]
    eval_cfg.rl_iterations = 4  # other settings: not the cached scores
    evaluate.cached_baseline_scores(items, eval_cfg, "default", cache)
    assert computed == [1, 1]
    cache.write_text(cache.read_text()[:20])  # a kill in mid-write of an older version
    again = evaluate.cached_baseline_scores(items, eval_cfg, "default", cache)
    assert computed == [1, 1, 1] and again == {"blurred": [{"psnr": 23.0}]}
    assert [p.name for p in tmp_path.iterdir()] == ["baselines.json"]
