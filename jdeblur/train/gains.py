"""Evaluation that separates deblurring from denoising: gains by noise level and blur family.

A model trained on noisy blurred images can gain over its input mostly by denoising; that gain
grows with the noise and says nothing about deblurring. So, besides the experiment's own noise
range, every synthetic test image is scored under each blur family at fixed noise levels
(``eval.noise_levels``, e.g. 0 and 1%), with the same kernels at every level (a kernel is drawn
from the image's key, the noise from another stream, ``jdeblur.physics.degrade``), and under
families that training never draws from (``eval.out_of_family``: e.g. a defocus disk, or motion
from another trajectory model, ``gp_motion``). The headline figure is the low-noise gain.

The grid is a set of cells (noise label, family), each an eval set of ``eval.draws`` draws per
test image (``jdeblur.data.eval_set``); the label of a fixed level is its value (``'0.01'``), of
the experiment's range ``'range'``. This module says what the cells are and formats their
tables; ``jdeblur.train.evaluate`` scores them (baselines once per run, cached in the workdir).
Images are HWC float32 in [0, 1].

Result layout (``final.json``'s ``by_noise[split]``)::

    {label: {"in_family": table, "out_of_family": table, "families": {family: table}}}

with ``table`` mapping method -> {"psnr", "ssim"} means over the cell's images.
"""
import math

import ml_collections

from jdeblur.checks import check_choice
from jdeblur.errors import UserError
from jdeblur.physics.kernel_mixture import FAMILIES, validate_blur_config

RANGE = "range"

METHOD_LABELS = {
    "blurred": "blurred input",
    "wiener": "Wiener, true kernel (oracle balance)",
    "richardson_lucy": "Richardson-Lucy, true kernel",
    "model": "model (blind)",
}
NONBLIND_MODEL_LABEL = "model (true kernel)"


def model_label(module) -> str:
    """How tables name the model: blind, or given the true kernel (and noise level)."""
    from jdeblur.models.registry import model_inputs

    return METHOD_LABELS["model"] if "kernel" not in model_inputs(module) else NONBLIND_MODEL_LABEL


def check_eval_grid(config) -> None:
    """Raises UserError, naming the field, for noise levels or out-of-family sets that cannot apply."""
    levels = tuple(config.eval.noise_levels)
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level < 1:
            raise UserError(f"config.eval.noise_levels={levels!r}: expected noise standard deviations in [0, 1)")
    trained = {name for name, weight in zip(config.degrade.blur.families, config.degrade.blur.weights) if weight > 0}
    for family in config.eval.out_of_family:
        check_choice(family, "config.eval.out_of_family", FAMILIES)
        if family in trained:
            raise UserError(f"config.eval.out_of_family: {family!r} is one of the families training draws from "
                            f"(degrade.blur.families {tuple(sorted(trained))}); out-of-family kernels must "
                            "come from a generator training never uses")
        try:  # its parameter ranges (degrade.blur.<family>) must suit the kernel size
            validate_blur_config(cell_degrade_config(config, RANGE, family).blur)
        except ValueError as error:
            raise UserError(f"config.eval.out_of_family {family!r}: {error}") from error


def enabled(config) -> bool:
    """Whether the experiment asks for the grid (and has synthetic blur to build it from)."""
    from jdeblur.data.datasets import PAIRED

    grid = config.eval.get("noise_levels", ()) or config.eval.get("out_of_family", ())
    return bool(grid) and config.data.name not in PAIRED


def labels(config) -> list[str]:
    """The noise labels of the grid: each fixed level, then the experiment's range."""
    return [level_label(level) for level in config.eval.noise_levels] + [RANGE]


def level_label(level: float) -> str:
    return f"{float(level):g}"


def display_label(label: str, config) -> str:
    """How a table heads a noise label: 'sigma 0', 'sigma 1%', 'sigma 1-5%' (the experiment's range)."""
    if label != RANGE:
        return f"sigma {_percent(float(label))}"
    noise = config.degrade.noise
    if noise.kind == "none":
        return "no noise"
    if noise.kind == "gaussian":
        low, high = noise.sigma
        return f"sigma {_percent(low).rstrip('%')}-{_percent(high)}"
    return f"{noise.kind} (the experiment's)"


def _percent(value: float) -> str:
    return f"{100 * value:g}%" if value else "0"


def cell_degrade_config(config, label: str, family: str) -> ml_collections.ConfigDict:
    """The degradation of one cell: the experiment's, restricted to ``family``, at the cell's noise."""
    cfg = ml_collections.ConfigDict(config.degrade.to_dict())
    cfg.blur.families, cfg.blur.weights = (family,), (1.0,)
    if label != RANGE:
        level = float(label)
        cfg.noise.kind = "gaussian" if level > 0 else "none"
        cfg.noise.sigma, cfg.noise.sigma_log_uniform = (level, level), False
    return cfg


def grid_families(config) -> tuple[list[str], list[str]]:
    """(in-family, out-of-family) families of the grid: the scored training families, then the others."""
    inside = list(config.eval.blur_families) or [
        name for name, weight in zip(config.degrade.blur.families, config.degrade.blur.weights) if weight > 0]
    return inside, list(config.eval.out_of_family)


def pool(cells: list[dict]) -> dict:
    """Per-image scores of several cells as one set."""
    return {method: [s for cell in cells for s in cell[method]] for method in cells[0]}


def format_gains(by_noise: dict, config, *, convention: str, title: str, model: str = METHOD_LABELS["model"],
                 methods: tuple[str, ...] = ("model", "wiener")) -> str:
    """A markdown table of PSNR gains over the blurred input: a row per family (and the pooled
    in-family and out-of-family rows), a column per noise label holding each method's gain."""
    label_names = list(by_noise)
    present = [m for m in methods
               if any(m in table for entry in by_noise.values() for table in entry["families"].values())]
    names = {**METHOD_LABELS, "model": model}
    methods_text = " / ".join(names.get(m, m).split(",")[0].split(" (")[0] for m in present)
    header = ["blur family"] + [f"{display_label(lb, config)}: {methods_text}" for lb in label_names]
    header.append("blurred input PSNR (dB): " + " / ".join(display_label(lb, config) for lb in label_names))
    described = {"wiener": "the Wiener filter given the true kernel and the best balance per image"}
    lines = [f"{title}: PSNR gain over the blurred input in dB, "
             f"{' / '.join(described.get(m, names.get(m, m)) for m in present)} (metric convention: {convention})",
             "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    inside, outside = grid_families(config)
    rows = [(f, lambda e, f=f: e["families"].get(f)) for f in inside]
    rows.append(("**all in-family**", lambda e: e.get("in_family")))
    rows += [(f"{f} (out of family)", lambda e, f=f: e["families"].get(f)) for f in outside]
    if outside:
        rows.append(("**all out-of-family**", lambda e: e.get("out_of_family")))
    for name, pick in rows:
        cells = [" / ".join(_gain(pick(by_noise[label]), m) for m in present) for label in label_names]
        cells.append(" / ".join(_value(pick(by_noise[label]), "blurred") for label in label_names))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gain(table, method: str) -> str:
    if not table or method not in table:
        return "-"
    gain = table[method]["psnr"] - table["blurred"]["psnr"]
    return "-" if math.isnan(gain) else f"{gain:+.2f}"


def _value(table, method: str) -> str:
    return "-" if not table or method not in table else f"{table[method]['psnr']:.2f}"
