"""Ablation sweeps: expand an experiment's declared sweep into runs, and gather them into a table.

An experiment declares its sweep next to its config, as ``get_sweep(arg=None)`` returning::

    dict(seeds=(0, 1, 2),
         product={'model.variant': ('tiny', 'small')},  # cartesian product over these fields
         zip={'loss.l1': (1.0, 0.0), 'loss.psnr': (0.0, 1.0)},  # varied together, row by row
         labels=('l1', 'psnr'))                         # optional names of the zip rows

A point is one combination of overrides; each point runs once per seed, in its own workdir under
the sweep's root, named after its overrides (``loss.l1=1.0,loss.psnr=0.0,seed=0``). Every run is an
ordinary ``launch.py train`` command, so a sweep runs here one run after another, or on a cluster
from the commands ``--dry-run`` prints. A run is finished when its workdir holds ``final.json``.

The report gathers the runs' ``final.json``: per point, the mean and standard deviation over seeds
of every method's metrics on the test images, and the same per blur family where the runs scored
families separately (``by_family``: synthetic blur; see ``eval.blur_families``).

A run started by the sweep ends with the sweep, however the sweep ends (``kill -9`` included), so
that a rerun of the sweep never finds the previous one's run still training (``die_with_sweep``:
on Linux the kernel's parent-death signal; on other POSIX systems a thread that watches the parent;
on Windows nothing).
"""
import csv
import dataclasses
import itertools
import math
import os
import pathlib
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time

from jdeblur import config as cfglib
from jdeblur.atomic import read_json, replacing, write_json, write_text
from jdeblur.errors import RunFailed, UserError
from jdeblur.train.defaults import validate
from jdeblur.workdir import FINAL

POINT = "point.json"
FAMILY = "family="  # the start of a blur family's columns in a report row
SWEEP_PID_ENV = "JDEBLUR_SWEEP_PID"  # set in a run's environment: the PID of the sweep that started it
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: a point's overrides and a seed."""

    point: str  # the point's name, shared by its seeds
    overrides: tuple[tuple[str, object], ...]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.point},seed={self.seed}" if self.point else f"seed={self.seed}"

    def override_args(self) -> list[str]:
        return [f"--config.{k}={format_value(v)}" for k, v in self.overrides] + [f"--config.seed={self.seed}"]


def format_value(value) -> str:
    """A value as the override parser reads it back (``repr`` for containers, plain otherwise)."""
    if isinstance(value, (tuple, list)):
        return repr(tuple(value)).replace(" ", "")
    return str(value)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+\-()]", "_", text)


def expand(sweep: dict) -> list[Run]:
    """All runs of a sweep declaration, in a fixed order (points, then seeds)."""
    unknown = set(sweep) - {"seeds", "product", "zip", "labels"}
    if unknown:
        raise cfglib.ConfigError(f"sweep: unknown keys {sorted(unknown)}; expected seeds, product, zip, labels")
    seeds = tuple(sweep.get("seeds", (0,)))
    product = dict(sweep.get("product", {}))
    zipped = dict(sweep.get("zip", {}))
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise cfglib.ConfigError(f"sweep.zip: expected lists of one length, got lengths {sorted(lengths)}")
    rows = list(zip(*zipped.values())) if zipped else [()]
    labels = tuple(sweep.get("labels", ()))
    if labels and len(labels) != len(rows):
        raise cfglib.ConfigError(f"sweep.labels: expected {len(rows)} labels (one per zip row), got {len(labels)}")
    runs = []
    for combo in itertools.product(*product.values()):
        for r, row in enumerate(rows):
            overrides = tuple(zip(product, combo)) + tuple(zip(zipped, row))
            parts = [f"{k}={format_value(v)}" for k, v in zip(product, combo)]
            parts += [labels[r]] if labels else [f"{k}={format_value(v)}" for k, v in zip(zipped, row)]
            point = _safe(",".join(parts))
            runs += [Run(point, overrides, int(s)) for s in seeds]
    return runs


def load_sweep(spec: str, *, extra_overrides=()) -> list[Run]:
    """The runs declared by ``get_sweep`` in the experiment ``spec`` (``NAME[:arg]``).

    Every point's config is loaded (with ``extra_overrides``) and validated, so that a bad
    override or value fails with a ``UserError`` before anything is trained or written.
    """
    module, path, arg = cfglib.load_experiment(spec)
    if not hasattr(module, "get_sweep"):
        raise cfglib.ConfigError(f"{path}: declares no sweep; expected a function get_sweep(arg=None)")
    runs = expand(cfglib.call_experiment(module, path, "get_sweep", arg))
    for run in runs:
        if run.seed == runs[0].seed:
            validate(cfglib.load_config(spec, run.override_args() + list(extra_overrides)))
    return runs


def command_spec(spec: str) -> str:
    """``spec`` as a train command run from the repository root names it (an absolute path if outside)."""
    path, arg = cfglib.resolve_experiment(spec)
    try:
        shown = path.relative_to(cfglib.REPO).as_posix()
    except ValueError:
        shown = str(path)
    return f"{shown}:{arg}" if arg else shown


def train_command(spec: str, workdir: pathlib.Path, run: Run, extra: list[str], *, python: str) -> list[str]:
    """The ``launch.py train`` command of one run, to be run from the repository root."""
    return [python, "launch.py", "train", "--config", command_spec(spec), "--workdir", str(workdir),
            *run.override_args(), *extra]


def run_sweep(spec: str, root, *, extra_overrides: list[str] = (), dry_run: bool = False,
              echo=print) -> list[Run]:
    """Runs every unfinished run of the sweep, one after another, or prints the commands.

    Finished runs (``final.json`` present) are skipped; an unfinished run's workdir resumes from
    its last checkpoint, since training resumes automatically. Every point's config is validated
    first (see ``load_sweep``).
    """
    root = pathlib.Path(root).absolute()  # the runs start in the repository root, not here
    runs = load_sweep(spec, extra_overrides=extra_overrides)
    for i, run in enumerate(runs):
        workdir = root / run.name
        if dry_run:
            echo(shlex.join(train_command(spec, workdir, run, list(extra_overrides), python="python")))
            continue
        if (workdir / FINAL).is_file():
            echo(f"[{i + 1}/{len(runs)}] {run.name}: finished, skipped")
            continue
        echo(f"[{i + 1}/{len(runs)}] {run.name}: training in {workdir}")
        workdir.mkdir(parents=True, exist_ok=True)
        write_json(workdir / POINT, {"point": run.point, "seed": run.seed, "overrides": dict(run.overrides)},
                   indent=1)
        command = train_command(spec, workdir, run, list(extra_overrides), python=sys.executable)
        sys.stdout.flush()  # our lines before the run's own output
        result = subprocess.run(command, cwd=cfglib.REPO, env={**os.environ, SWEEP_PID_ENV: str(os.getpid())})
        if result.returncode != 0:
            failure = UserError if result.returncode == 2 else RunFailed  # 2: the run refused what it was given
            raise failure(f"sweep run {run.name} failed with exit code {result.returncode} (its error is above); "
                          f"rerun the sweep to resume it. Command: {shlex.join(command)}")
    return runs


def die_with_sweep(*, poll_s: float = 1.0) -> None:
    """In a run that ``run_sweep`` started: makes this process end when the sweep's process ends.

    Call it first thing in the run. Linux: the kernel sends SIGKILL at the sweep's death
    (``prctl(PR_SET_PDEATHSIG)``); other POSIX systems: a daemon thread checks every ``poll_s``
    seconds whether this process was re-parented and kills it then. A run whose sweep has already
    ended exits at once. Does nothing in a process no sweep started.
    """
    sweep_pid = os.environ.pop(SWEEP_PID_ENV, None)  # popped: the run's own children are not the sweep's
    if sweep_pid is None or not sweep_pid.isdigit():
        return
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    elif os.name == "posix":
        def watch():
            while os.getppid() == int(sweep_pid):
                time.sleep(poll_s)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="jdeblur-die-with-sweep", daemon=True).start()
    if os.getppid() != int(sweep_pid):  # the sweep ended before the death signal was armed
        raise SystemExit(f"stopped: the sweep that started this run (process {sweep_pid}) has ended")


def point_of(workdir: pathlib.Path) -> str:
    """The point a run's workdir belongs to: from its ``point.json``, else from its name (``POINT,seed=N``),
    for runs started from the commands ``--dry-run`` printed (which write no ``point.json``)."""
    if (workdir / POINT).is_file():
        return read_json(workdir / POINT)["point"]
    return re.sub(r"(^|,)seed=-?\d+$", "", workdir.name)


def natural_key(text: str) -> list:
    """Sorts ``width8`` before ``width16``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _mean_and_std(row: dict, column: str, samples: list[float]) -> None:
    row[column] = statistics.fmean(samples)
    row[f"{column}/std"] = statistics.stdev(samples) if len(samples) > 1 else math.nan


def family_prefix(family: str) -> str:
    """The prefix of a blur family's columns in a report row (``family=gaussian/``)."""
    return f"{FAMILY}{family}/"


NOISE_GROUP = "noise "


def scored_groups(final: dict) -> dict[str, dict]:
    """The image groups a run scored apart, each a table: its blur families (``by_family``), then,
    where it scored the noise-by-family grid (``by_noise``, ``jdeblur.train.gains``), the in-family
    and out-of-family kernels at each noise level of its eval split (``'noise 0.01 in_family'``)."""
    groups = dict(sorted(final.get("by_family", {}).items()))
    for label, entry in final.get("by_noise", {}).get(final.get("split"), {}).items():
        for kind in ("in_family", "out_of_family"):
            if kind in entry:
                groups[f"{NOISE_GROUP}{label} {kind}"] = entry[kind]
    return groups


def gather(root) -> tuple[list[dict], str]:
    """Per point: mean and standard deviation over seeds of every (method, metric); and the convention.

    A row holds ``point``, ``seeds`` and ``METHOD/METRIC`` with ``METHOD/METRIC/std``; where the runs
    scored blur families separately (``by_family`` in ``final.json``), also, per family,
    ``family=F/seeds`` (the seeds that scored it: a family drawn at random may be missing from some)
    and ``family=F/METHOD/METRIC`` with its ``/std``.
    """
    root = pathlib.Path(root)
    finals = sorted(root.glob(f"*/{FINAL}"))
    if not finals:
        raise UserError(f"{root}: no finished runs (no */{FINAL}); run the sweep first")
    by_point: dict[str, list[dict]] = {}
    conventions = set()
    for final_path in finals:
        final = read_json(final_path)
        by_point.setdefault(point_of(final_path.parent), []).append(final)
        conventions.add(final["convention"])
    if len(conventions) > 1:
        raise UserError(f"{root}: runs were scored under different conventions {sorted(conventions)}")
    rows = []
    for point, finals_of_point in sorted(by_point.items(), key=lambda item: natural_key(item[0])):
        row = {"point": point or "(base)", "seeds": len(finals_of_point)}
        for method, values in finals_of_point[0]["results"].items():
            for metric in values:
                samples = [f["results"][method][metric] for f in finals_of_point if method in f["results"]]
                _mean_and_std(row, f"{method}/{metric}", samples)
        groups = [scored_groups(f) for f in finals_of_point]
        families = list(dict.fromkeys(name for g in groups for name in g))
        for family in families:
            tables = [g[family] for g in groups if family in g]
            prefix = family_prefix(family)
            row[f"{prefix}seeds"] = len(tables)
            for method, values in tables[0].items():
                for metric in values:
                    samples = [t[method][metric] for t in tables if method in t]
                    _mean_and_std(row, f"{prefix}{method}/{metric}", samples)
        rows.append(row)
    return rows, conventions.pop()


def _metric_columns(rows: list[dict], prefix: str) -> list[str]:
    """The ``METHOD/METRIC`` columns under ``prefix`` (``''`` for all images, or a family's), without it."""
    names = dict.fromkeys(c.removeprefix(prefix) for row in rows for c in row if c.startswith(prefix))
    return [c for c in names if c not in ("point", "seeds") and not c.endswith("/std")
            and not c.startswith(FAMILY)]


def _table_lines(rows: list[dict], prefix: str = "") -> list[str]:
    """A markdown table of the columns under ``prefix``, mean ± std; rows without them are left out."""
    columns = _metric_columns(rows, prefix)
    lines = ["| point | seeds | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for row in rows:
        if f"{prefix}seeds" not in row:
            continue
        cells = []
        for c in columns:
            mean, std = row.get(prefix + c, math.nan), row.get(f"{prefix}{c}/std", math.nan)
            digits = 2 if c.endswith("psnr") else 4
            cells.append("-" if math.isnan(mean) else
                         f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}"))
        lines.append(f"| {row['point']} | {row[prefix + 'seeds']} | " + " | ".join(cells) + " |")
    return lines


def write_report(root) -> dict[str, pathlib.Path]:
    """Writes ``report.md``, ``report.csv`` and ``report.png`` for the sweep under ``root``.

    The markdown has the table over all test images, then one table per blur family when the
    runs scored families separately, and per noise level (in-family and out-of-family kernels)
    when they scored the noise-by-family grid.
    """
    root = pathlib.Path(root)
    rows, convention = gather(root)
    lines = [f"Sweep {root.name}: mean ± standard deviation over seeds; metrics in convention `{convention}`.",
             "", *_table_lines(rows)]
    families = list(dict.fromkeys(c.split("/")[0].removeprefix(FAMILY) for row in rows for c in row
                                  if c.startswith(FAMILY)))
    for family in families:
        if family.startswith(NOISE_GROUP):
            label, kind = family.removeprefix(NOISE_GROUP).split(" ")
            level = "the experiment's noise range" if label == "range" else f"noise sigma {label}"
            lines += ["", f"Kernels {kind.replace('_', '-')}, {level} (deblurring apart from denoising):", ""]
        else:
            lines += ["", f"Blur family `{family}` (seeds: the runs whose test images included it):", ""]
        lines += _table_lines(rows, family_prefix(family))
    paths = {"md": root / "report.md", "csv": root / "report.csv", "png": root / "report.png"}
    write_text(paths["md"], "\n".join(lines) + "\n")
    fields = list(dict.fromkeys(c for row in rows for c in row))
    with replacing(paths["csv"], newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + ["convention"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "convention": convention})
    _plot(rows, convention, paths["png"], families)
    return paths


def _plot(rows: list[dict], convention: str, path: pathlib.Path, families: list[str]) -> None:
    """Bars of PSNR (mean ± std over seeds) per point and method: all test images, then one panel
    per blur family (two panels a row), on a shared axis so that the families compare at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all test images", "")] + [(f if f.startswith(NOISE_GROUP) else f"blur family {f}", family_prefix(f))
                                          for f in families]
    methods = [c.removesuffix("/psnr") for c in _metric_columns(rows, "") if c.endswith("/psnr")]
    panel_width = max(5, 1.2 * len(rows) * len(methods) / 2)
    columns = min(2, len(panels))
    grid_rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(panel_width * columns, 3.8 * grid_rows), sharey=True,
                             squeeze=False)
    axes = axes.ravel()
    for unused in axes[len(panels):]:
        unused.set_visible(False)
    width = 0.8 / len(methods)
    lowest = math.inf
    for ax, (title, prefix) in zip(axes, panels):
        shown = [r for r in rows if f"{prefix}seeds" in r]
        for m, method in enumerate(methods):
            means = [r.get(f"{prefix}{method}/psnr", math.nan) for r in shown]
            stds = [r.get(f"{prefix}{method}/psnr/std", math.nan) for r in shown]
            ax.bar([i + m * width for i in range(len(shown))], means, width,
                   yerr=[0 if math.isnan(v) else v for v in stds], capsize=3, label=method)
            lowest = min([lowest, *(v for v in means if not math.isnan(v))])
        ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(shown))])
        ax.set_xticklabels([r["point"] for r in shown], rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"PSNR (dB, {convention})")
    axes[0].set_ylim(bottom=lowest - 1)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(methods), fontsize=8,
               title="mean ± std over seeds", title_fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()))  # room for the legend above
    with replacing(path, "wb") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
