"""Sweep expansion, naming, the report over seeds, and runs that end with their sweep."""
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys

import PIL.Image
import pytest

from jdeblur import config as cfglib
from jdeblur import sweep
from jdeblur.errors import UserError
from jdeblur.workdir import FINAL
from tests.processes import is_alive, wait_until_dead


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


def write_run(root, point, seed, psnr_model, psnr_blurred=20.0, convention="default", by_family=None,
              point_json=True):
    """A finished run's files; ``by_family`` maps a family to its model PSNR (blurred: 1 dB less);
    without ``point_json``, as a run started from a ``--dry-run`` command leaves them."""
    workdir = root / f"{point},seed={seed}"
    workdir.mkdir(parents=True)
    if point_json:
        (workdir / sweep.POINT).write_text(json.dumps({"point": point, "seed": seed, "overrides": {}}))
    families = {family: {"blurred": {"psnr": p - 1.0, "ssim": 0.5}, "model": {"psnr": p, "ssim": 0.7}}
                for family, p in (by_family or {}).items()}
    (workdir / FINAL).write_text(json.dumps({
        "convention": convention, "step": 10, "by_family": families,
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


def test_report_groups_runs_from_printed_commands_and_sorts_points_naturally(tmp_path, rng):
    psnrs = {f"width{w}": 20 + rng.random(3) for w in (16, 4, 8)}
    for point, values in psnrs.items():
        for seed, psnr in enumerate(values):
            write_run(tmp_path, point, seed, float(psnr), point_json=False)
    rows = sweep.gather(tmp_path)[0]
    assert [(r["point"], r["seeds"]) for r in rows] == [("width4", 3), ("width8", 3), ("width16", 3)]
    for row in rows:
        assert math.isclose(row["model/psnr"], statistics.fmean(psnrs[row["point"]]))


def test_report_gains_by_noise_level_in_and_out_of_family(tmp_path):
    """Runs that scored the noise-by-family grid: a table per noise level and kernel kind."""
    for seed, gain in enumerate((2.0, 3.0)):
        write_run(tmp_path, "a", seed, 25.0)
        final_path = tmp_path / f"a,seed={seed}" / FINAL
        final = json.loads(final_path.read_text())
        cell = {"blurred": {"psnr": 27.0, "ssim": 0.6}, "model": {"psnr": 27.0 + gain, "ssim": 0.8}}
        final["split"] = "test"
        final["by_noise"] = {"test": {"0.01": {"families": {}, "in_family": cell, "out_of_family": cell}},
                             "external": {"0.01": {"families": {}, "in_family": cell}}}
        final_path.write_text(json.dumps(final))
    row = sweep.gather(tmp_path)[0][0]
    assert math.isclose(row["family=noise 0.01 in_family/model/psnr"], 29.5)
    assert math.isclose(row["family=noise 0.01 out_of_family/model/psnr/std"], statistics.stdev([29.0, 30.0]))
    text = sweep.write_report(tmp_path)["md"].read_text()
    assert "Kernels in-family, noise sigma 0.01" in text and "Kernels out-of-family, noise sigma 0.01" in text
    assert "| a | 2 | 27.00 ± 0.00 | 0.6000 ± 0.0000 | 29.50 ± 0.71 |" in text


def test_report_refuses_mixed_conventions_and_empty_root(tmp_path):
    with pytest.raises(UserError, match="no finished runs"):
        sweep.gather(tmp_path)
    write_run(tmp_path, "a", 0, 25.0)
    write_run(tmp_path, "a", 1, 25.0, convention="basicsr_y")
    with pytest.raises(UserError, match="different conventions"):
        sweep.gather(tmp_path)


def test_report_per_blur_family(tmp_path, rng):
    # Point "all" scored both families in each seed; point "drawn" drew gaussian in one seed only.
    psnrs = {("all", s): {"gaussian": 27 + rng.random(), "camera_shake": 24 + rng.random()} for s in range(3)}
    psnrs |= {("drawn", 0): {"gaussian": 26.0, "camera_shake": 23.0}, ("drawn", 1): {"camera_shake": 23.5}}
    for (point, seed), by_family in psnrs.items():
        write_run(tmp_path, point, seed, 25.0, by_family=by_family)
    rows = {r["point"]: r for r in sweep.gather(tmp_path)[0]}
    for point, seeds in (("all", 3), ("drawn", 2)):
        for family in ("gaussian", "camera_shake"):
            samples = [psnrs[point, s][family] for s in range(seeds) if family in psnrs[point, s]]
            prefix = f"family={family}/"
            assert rows[point][prefix + "seeds"] == len(samples)
            assert math.isclose(rows[point][prefix + "model/psnr"], statistics.fmean(samples))
            assert math.isclose(rows[point][prefix + "blurred/psnr"], statistics.fmean(samples) - 1.0)
            std = rows[point][prefix + "model/psnr/std"]
            assert math.isnan(std) if len(samples) == 1 else math.isclose(std, statistics.stdev(samples))
    text = sweep.write_report(tmp_path)["md"].read_text()
    main, *family_tables = text.split("Blur family")
    assert "| point | seeds | blurred/psnr | blurred/ssim | model/psnr | model/ssim |" in main
    assert "family=" not in main and "| drawn | 2 | 20.00 ± 0.00 | 0.5000 ± 0.0000 | 25.00 ± 0.00 |" in main
    assert [t.split("`")[1] for t in family_tables] == ["camera_shake", "gaussian"]
    gaussian = family_tables[1]
    mean = statistics.fmean(psnrs["all", s]["gaussian"] for s in range(3))
    std = statistics.stdev(psnrs["all", s]["gaussian"] for s in range(3))
    assert f"| all | 3 | {mean - 1:.2f} ± {std:.2f} | 0.5000 ± 0.0000 | {mean:.2f} ± {std:.2f} |" in gaussian
    assert "| drawn | 1 | 25.00 | 0.5000 | 26.00 | 0.7000 |" in gaussian
    with (tmp_path / "report.csv").open() as f:
        csv_rows = {row["point"]: row for row in csv.DictReader(f)}
    assert csv_rows["drawn"]["family=gaussian/seeds"] == "1"
    assert float(csv_rows["all"]["family=camera_shake/model/psnr"]) == pytest.approx(
        statistics.fmean(psnrs["all", s]["camera_shake"] for s in range(3)))
    # The plot: a panel for all images, then one per family, two a row.
    flat = tmp_path / "without_families"
    for point, seed in psnrs:
        write_run(flat, point, seed, 25.0)
    with PIL.Image.open(tmp_path / "report.png") as panels, \
            PIL.Image.open(sweep.write_report(flat)["png"]) as one_panel:
        assert panels.size == (2 * one_panel.width, 2 * one_panel.height)


# --- a run ends with its sweep (kill -9 of the sweep included) ---

RUN = ("import sys, time; from jdeblur.sweep import die_with_sweep; sys.platform = sys.argv[1]; "
       "die_with_sweep(poll_s=0.05); print('armed', flush=True); time.sleep(60)")
SWEEP = ("import os, subprocess, sys; child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
         "env={**os.environ, 'JDEBLUR_SWEEP_PID': str(os.getpid())}, stdout=subprocess.PIPE, text=True); "
         "assert child.stdout.readline() == 'armed\\n'; print(child.pid, flush=True); child.wait()")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("platform", ["linux", "darwin"])  # the kernel's death signal; the watching thread
def test_a_run_dies_with_its_sweep_on_kill_9(platform):
    fake_sweep = subprocess.Popen([sys.executable, "-c", SWEEP, RUN, platform], cwd=cfglib.REPO, stdout=subprocess.PIPE,
                                  text=True)
    run_pid = int(fake_sweep.stdout.readline())
    try:
        assert is_alive(run_pid)
        fake_sweep.send_signal(signal.SIGKILL)
        fake_sweep.wait()
        assert wait_until_dead(run_pid), f"the run {run_pid} outlived its sweep"
    finally:
        if is_alive(run_pid):
            os.kill(run_pid, signal.SIGKILL)


def test_a_run_whose_sweep_has_already_ended_stops_at_once():
    run = subprocess.run([sys.executable, "-c", RUN, sys.platform], cwd=cfglib.REPO, capture_output=True, text=True,
                         env={**os.environ, "JDEBLUR_SWEEP_PID": "1"}, timeout=60)
    assert run.returncode == 1 and "armed" not in run.stdout
    assert "the sweep that started this run (process 1) has ended" in run.stderr
