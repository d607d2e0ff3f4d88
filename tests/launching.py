"""Running ``launch.py`` as a user does (a subprocess in the checkout, or ``jdeblur.cli.main`` in this
process), and the check of a usage error."""
import json
import math
import subprocess
import sys

from jdeblur import cli
from jdeblur.config import REPO

UNET_LOCAL = "experiments/unet.py:runlocal"  # the cheapest full run: the launcher tests train it


def launch_py(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launch.py", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def check_runlocal_outputs(workdir, *, paired: bool = False) -> None:
    """What a finished runlocal run promises: every step trained, finite results for every method, and
    the gains by family and noise level its eval config asks for (deblurring apart from denoising)."""
    config = json.loads((workdir / "config.json").read_text())
    final = json.loads((workdir / "final.json").read_text())
    assert final["step"] == config["train"]["steps"] and "model" in final["results"]
    assert finite_metrics(final["results"]) and all(finite_metrics(t) for t in final["by_family"].values())
    if paired:  # real pairs: no kernel, so no classical baseline and no family
        assert set(final["results"]) == {"blurred", "model"} and final["by_family"] == {}
    families = config["eval"].get("blur_families")  # every test image scored under each of them
    if families:
        assert sorted(final["by_family"]) == sorted(families)
    levels, outside = config["eval"].get("noise_levels"), config["eval"].get("out_of_family")
    if levels or outside:
        by_noise = final["by_noise"][config["data"]["eval_split"]]
        assert list(by_noise) == [f"{level:g}" for level in levels] + ["range"]
        for entry in by_noise.values():
            assert set(entry["families"]) >= set(outside) and finite_metrics(entry["in_family"])
            assert not outside or finite_metrics(entry["out_of_family"])


def finite_metrics(table: dict) -> bool:
    return all(math.isfinite(v) for metrics in table.values() for v in metrics.values())


def assert_usage_error(result, *fragments):
    """Exit code 2 and exactly one line on stderr, ``error: ...``, holding every fragment; no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def usage_error_in_process(capsys, *argv) -> str:
    """``cli.main(argv)`` in this process: exit code 2 and one line ``error: ...`` on stderr (returned)."""
    code = cli.main([str(a) for a in argv])
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]
