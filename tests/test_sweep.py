"""Sweep expansion, naming, and the report over seeds."""
import csv
import json
import math
import statistics

import pytest

from jdeblur import config as cfglib
from jdeblur import sweep


def test_expand_product_zip_seeds():
    runs = sweep.expand(dict(seeds=(0, 1), product={"model.width": (8, 16)},
                             zip={"loss.l1": (1.0, 0.0), "loss.psnr": (0.0, 1.0)}, labels=("l1", "psnr")))
    assert len(runs) == 2 * 2 * 2
    assert [r.name for r in runs[:4]] == [
        "model.width=8,l1,seed=0", "model.width=8,l1,seed=1", "model.width=8,psnr,seed=0", "model.width=8,psnr,seed=1"]
    assert runs[2].overrides == (("model.width", 8), ("loss.l1", 0.0), ("loss.psnr", 1.0))
    assert runs[3].override_args() == ["--config.model.width=8", "--config.loss.l1=0.0", "--config.loss.psnr=1.0",
                                       "--config.seed=1"]
    assert len({r.name for r in runs}) == len(runs)


def test_expand_formats_tuples_so_the_parser_reads_them_back():
    (run,) = sweep.expand(dict(seeds=(3,), product={"degrade.blur.families": (("gaussian", "disk"),)}))
    arg = run.override_args()[0]
    assert arg == "--config.degrade.blur.families=('gaussian','disk')"
    assert cfglib.parse_value(arg.partition("=")[2], ("x",)) == ("gaussian", "disk")


@pytest.mark.parametrize("bad, message", [
    (dict(zip={"a": (1, 2), "b": (1,)}), "one length"),
    (dict(zip={"a": (1, 2)}, labels=("x",)), "one per zip row"),
    (dict(seeds=(0,), grid={}), "unknown keys"),
])
def test_bad_declarations(bad, message):
    with pytest.raises(cfglib.ConfigError, match=message):
        sweep.expand(bad)


def write_run(root, point, seed, psnr_model, psnr_blurred=20.0, convention="default"):
    workdir = root / f"{point},seed={seed}"
    workdir.mkdir(parents=True)
    (workdir / sweep.POINT).write_text(json.dumps({"point": point, "seed": seed, "overrides": {}}))
    (workdir / sweep.FINAL).write_text(json.dumps({
        "convention": convention, "step": 10,
        "results": {"blurred": {"psnr": psnr_blurred, "ssim": 0.5}, "model": {"psnr": psnr_model, "ssim": 0.7}}}))


def test_report_mean_and_std_over_seeds(tmp_path):
    values = {"a": [24.0, 25.0, 26.5], "b": [22.0, 22.5, 23.0]}
    for point, psnrs in values.items():
        for seed, p in enumerate(psnrs):
            write_run(tmp_path, point, seed, p)
    rows, convention = sweep.gather(tmp_path)
    assert convention == "default"
    by_point = {r["point"]: r for r in rows}
    for point, psnrs in values.items():
        assert by_point[point]["seeds"] == 3
        assert math.isclose(by_point[point]["model/psnr"], statistics.fmean(psnrs))
        assert math.isclose(by_point[point]["model/psnr/std"], statistics.stdev(psnrs))
    paths = sweep.write_report(tmp_path)
    text = paths["md"].read_text()
    assert "convention `default`" in text and "| a | 3 |" in text and "25.17 ± 1.26" in text
    with paths["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == 2
    assert paths["png"].stat().st_size > 1000


def test_report_refuses_mixed_conventions_and_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        sweep.gather(tmp_path)
    write_run(tmp_path, "a", 0, 25.0)
    write_run(tmp_path, "a", 1, 25.0, convention="basicsr_y")
    with pytest.raises(ValueError, match="different conventions"):
        sweep.gather(tmp_path)
