"""Evaluation on full-size test images: the model beside the blurred input and classical baselines.

Each evaluation item is a dict with ``name``, ``blurred`` and ``sharp`` (HWC, uint8 or float in
[0, 1]) and, for synthetic degradations, the true ``kernel``, ``noise_sigma`` and blur ``family``.
Methods scored:

- ``blurred``: the input itself;
- ``wiener``: Wiener deconvolution with the true kernel, edge-tapered, the balance chosen per image
  as the best of ``eval.wiener_balances`` against the sharp image (an oracle: the best this
  baseline can do, which makes "the model beats Wiener" a strict claim);
- ``richardson_lucy``: Richardson-Lucy with the true kernel, ``eval.rl_iterations`` iterations,
  reflect boundary;
- ``model``: the network through ``jdeblur.infer.restore`` (full image, padded, tiled if over the
  budget, optionally self-ensembled).

The baselines do not depend on the parameters, so they are computed once per run and cached.
"""
import functools
import json
import pathlib
import re

import jax
import numpy as np

from jdeblur import infer, metrics
from jdeblur.atomic import replacing, write_json, write_text
from jdeblur.checks import check_choice, check_integer, check_positive
from jdeblur.errors import UserError
from jdeblur.models.registry import apply_model, model_estimates, model_inputs
from jdeblur.physics.kernel_mixture import FAMILIES
from jdeblur.restore.fourier import wiener
from jdeblur.restore.richardson_lucy import richardson_lucy
from jdeblur.train import gains

BASELINES = ("wiener", "richardson_lucy")


def as_float(image) -> np.ndarray:
    """An image as float32 in [0, 1] (uint8 and uint16 scaled, floats unchanged)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    return image.astype(np.float32)


def score_image(pred, target, convention: str) -> dict:
    """PSNR and SSIM of one HWC image under ``convention``, as Python floats."""
    values = metrics.score(np.asarray(pred)[None], np.asarray(target)[None], convention)
    return {k: float(v[0]) for k, v in values.items()}


def _best_wiener(blurred, sharp, kernel, balances, convention):
    """Wiener's scores at the balance with the best PSNR (the oracle balance).

    Only the PSNR picks the balance, so SSIM is computed once, for the chosen restoration.
    """
    options = metrics.get_convention(convention).options
    best = None
    for balance in balances:
        restored = np.clip(np.asarray(wiener(blurred, kernel, balance, edge_taper=True)), 0.0, 1.0)
        value = float(metrics.psnr(restored[None], sharp[None], **options)[0])
        if best is None or value > best[0]:
            best = (value, restored)
    return score_image(best[1], sharp, convention)


def baseline_scores(items: list[dict], eval_cfg, convention: str,
                    methods: tuple[str, ...] = BASELINES) -> dict[str, list[dict]]:
    """Per-image scores of the blurred input and, where kernels are known, the classical ``methods``."""
    scores = {"blurred": []}
    has_kernels = all("kernel" in item for item in items)
    if has_kernels:
        scores.update({name: [] for name in methods})
    for item in items:
        blurred, sharp = as_float(item["blurred"]), as_float(item["sharp"])
        scores["blurred"].append(score_image(blurred, sharp, convention))
        if not has_kernels:
            continue
        kernel = np.asarray(item["kernel"], np.float32)
        if "wiener" in methods:
            scores["wiener"].append(_best_wiener(blurred, sharp, kernel, eval_cfg.wiener_balances, convention))
        if "richardson_lucy" in methods:
            rl = richardson_lucy(blurred, kernel, num_iter=eval_cfg.rl_iterations, boundary="reflect")
            scores["richardson_lucy"].append(score_image(np.clip(np.asarray(rl), 0.0, 1.0), sharp, convention))
    return scores


def cached_baseline_scores(items, eval_cfg, convention, cache_path: pathlib.Path,
                           methods: tuple[str, ...] = BASELINES) -> dict[str, list[dict]]:
    """``baseline_scores``, read from ``cache_path`` when it was computed for the same items and settings."""
    key = {
        "names": [item["name"] for item in items],
        "convention": convention,
        "methods": list(methods),
        "wiener_balances": list(eval_cfg.wiener_balances),
        "rl_iterations": int(eval_cfg.rl_iterations),
        "fingerprint": float(sum(float(np.asarray(item["blurred"], np.float64).sum()) for item in items)),
    }
    try:
        cached = json.loads(cache_path.read_text())
        if cached.get("key") == key:
            return cached["scores"]
    except (OSError, ValueError, AttributeError):
        pass  # no cache yet, or an unreadable one: it is only a cache, computed again below
    scores = baseline_scores(items, eval_cfg, convention, methods)
    if jax.process_index() == 0:
        write_json(cache_path, {"key": key, "scores": scores})
    return scores


def restore_items(module, params, items: list[dict], eval_cfg) -> list[np.ndarray]:
    """The model's restorations of every item's blurred image (float32 HWC in [0, 1])."""
    # One device holds a copy of the parameters: evaluation is a sequence of single full images,
    # and a replicated program would run the same work on every device. Via the host, because
    # arrays placed on the training mesh carry its (Explicit) axes into any program they enter.
    params = jax.device_put(jax.device_get(params), jax.local_devices()[0])
    observed = model_inputs(module)[1:]  # a non-blind model is given the true kernel and noise level
    return [
        infer.restore_with_model(module, params, as_float(item["blurred"]),
                                 **{name: item[name] for name in observed},
                                 max_pixels=eval_cfg.max_pixels, overlap=eval_cfg.overlap, ensemble=eval_cfg.ensemble,
                                 pad=eval_cfg.get("pad", "reflect"))  # workdirs older than the field reflected
        for item in items
    ]


def summarize(per_image: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean of each metric over images, per method."""
    return {
        method: {metric: float(np.mean([s[metric] for s in scores])) for metric in scores[0]}
        for method, scores in per_image.items() if scores
    }


def by_family(per_image: dict[str, list[dict]], items: list[dict]) -> dict[str, dict]:
    """``summarize`` restricted to each blur family present in the items (synthetic data only)."""
    if not all("family" in item for item in items):
        return {}
    families = np.array([int(item["family"]) for item in items])
    out = {}
    for f in sorted(set(families.tolist())):
        chosen = np.flatnonzero(families == f)
        out[FAMILIES[f]] = summarize({m: [s[i] for i in chosen] for m, s in per_image.items() if s})
    return out


def evaluate(module, params, items: list[dict], eval_cfg, *, baselines: dict[str, list[dict]],
             convention: str) -> tuple[dict, dict, list[np.ndarray]]:
    """Scores the model on ``items`` beside precomputed baseline scores.

    Returns:
      (table, table_by_family, restored): ``table`` maps method -> mean metrics; the restorations
      are returned for the sample grid.
    """
    restored = restore_items(module, params, items, eval_cfg)
    per_image = dict(baselines)
    per_image["model"] = [score_image(r, as_float(item["sharp"]), convention) for r, item in zip(restored, items)]
    return summarize(per_image), by_family(per_image, items), restored


def make_eval_items(config, split: str, max_images: int | None = None):
    """The evaluation items of ``split``: the experiment's fixed eval set (``jdeblur.data.eval_set``).

    Every test image is degraded ``config.eval.draws`` times (synthetic data only). With
    ``config.eval.blur_families`` set, that many times under each of those families (the draws
    restricted to that family, whatever the training mixture), so that ``by_family`` compares every
    family on the same images.
    """
    import ml_collections

    from jdeblur.data.datasets import PAIRED
    from jdeblur.data.eval_set import make_eval_set

    # Fields absent from the configs of workdirs made by older versions: what those versions did.
    families = tuple(config.eval.get("blur_families", ()))
    options = dict(seed=eval_seed(config), split=split, max_images=max_images, draws=config.eval.get("draws", 1),
                   crop=config.eval.get("crop"))
    if not families or config.data.name in PAIRED:
        return make_eval_set(config.data, config.degrade, **options)
    items = []
    for family in families:
        degrade_cfg = ml_collections.ConfigDict(config.degrade.to_dict())
        degrade_cfg.blur.families, degrade_cfg.blur.weights = (family,), (1.0,)
        items += make_eval_set(config.data, degrade_cfg, **options)
    return items


def make_grid_items(config, split: str, max_images: int | None = None) -> dict[tuple[str, str], list[dict]]:
    """The eval sets of the noise-by-family grid (``jdeblur.train.gains``), ``{(label, family): items}``."""
    from jdeblur.data.eval_set import make_eval_set

    inside, outside = gains.grid_families(config)
    options = dict(seed=eval_seed(config), split=split, max_images=max_images,
                   draws=config.eval.get("draws", 1), crop=config.eval.get("crop"))
    return {(label, family): make_eval_set(config.data, gains.cell_degrade_config(config, label, family), **options)
            for label in gains.labels(config) for family in inside + outside}


def score_grid(module, params, grid: dict, config, *, convention: str, cache_dir: pathlib.Path | None,
               progress=None) -> dict:
    """Scores the model and the baselines on every cell; returns ``by_noise`` (``jdeblur.train.gains``).

    Args:
      cache_dir: where each cell's baseline scores are cached (None: not cached).
      progress: optional callable(done, total) after each cell.
    """
    inside, outside = gains.grid_families(config)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    per_cell = {}
    for done, ((label, family), items) in enumerate(grid.items(), 1):
        # The grid's tables compare the model with the oracle Wiener filter only: Richardson-Lucy
        # (30 iterations on every image of every cell) would take longer than the model.
        if cache_dir is None:
            baselines = baseline_scores(items, config.eval, convention, ("wiener",))
        else:
            baselines = cached_baseline_scores(items, config.eval, convention, cache_dir / f"{label}_{family}.json",
                                               ("wiener",))
        restored = restore_items(module, params, items, config.eval)
        scores = dict(baselines)
        scores["model"] = [score_image(r, as_float(item["sharp"]), convention)
                           for r, item in zip(restored, items)]
        per_cell[label, family] = scores
        if progress is not None:
            progress(done, len(grid))
    by_noise = {}
    for label in gains.labels(config):
        entry = {"families": {f: summarize(per_cell[label, f]) for f in inside + outside}}
        for name, group in (("in_family", inside), ("out_of_family", outside)):
            if group:
                entry[name] = summarize(gains.pool([per_cell[label, f] for f in group]))
        by_noise[label] = entry
    return by_noise


def eval_seed(config) -> int:
    """The seed of the eval set's degradations: ``eval.seed``, or the experiment's seed where the
    config predates that field (as those versions drew them)."""
    return config.eval.get("seed", config.seed)


def save_sample_grid(items: list[dict], restored: list[np.ndarray], path: pathlib.Path, *, count: int,
                     height: int = 256, kernels: list[np.ndarray] | None = None) -> pathlib.Path | None:
    """Writes a PNG with one row per image: blurred | restored | sharp, each scaled to ``height`` px;
    then, for synthetic blur, the true kernel and (``kernels``, a blind model's) the estimated one,
    each scaled to its own maximum."""
    if count <= 0 or not items:
        return None
    from PIL import Image

    def kernel_panel(kernel):
        kernel = np.asarray(kernel, np.float32)
        return np.repeat((kernel / max(float(kernel.max()), 1e-12))[..., None], 3, axis=-1)

    rows = []
    for i, (item, result) in enumerate(list(zip(items, restored))[:count]):
        panels = [as_float(item["blurred"]), result, as_float(item["sharp"])]
        h, w = panels[0].shape[:2]
        width = max(1, round(w * height / h))
        sizes = [(width, height)] * 3
        extra = ([item["kernel"]] if "kernel" in item else []) + ([kernels[i]] if kernels is not None else [])
        panels += [kernel_panel(k) for k in extra]
        sizes += [(height, height)] * len(extra)
        resized = [np.asarray(Image.fromarray(np.uint8(np.clip(p, 0, 1) * 255 + 0.5)).resize(
            size, Image.BILINEAR if j < 3 else Image.NEAREST)) for j, (p, size) in enumerate(zip(panels, sizes))]
        gap = np.full((height, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([part for panel in resized for part in (panel, gap)][:-1], axis=1))
    widest = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb") as f:
        Image.fromarray(np.concatenate(rows, axis=0)).save(f, format="PNG")
    return path


def estimated_kernels(module, params, items: list[dict]) -> list[np.ndarray] | None:
    """The kernels a blind model estimates for each item's blurred image; None for other models."""
    if "kernel" not in model_estimates(module):
        return None
    params = jax.device_put(jax.device_get(params), jax.local_devices()[0])
    out = []
    for item in items:
        image = as_float(item["blurred"])
        pad = [(0, -n % module.size_multiple) for n in image.shape[:2]] + [(0, 0)]
        padded = np.pad(image, pad, mode="reflect")[None]
        out.append(np.asarray(_estimated_kernel(module, params, padded)[0]))
    return out


# Compiled once per model and image shape, across evaluations (the module is hashable, so static):
# the model run op by op took 6x longer than compiling it.
@functools.partial(jax.jit, static_argnums=0)
def _estimated_kernel(module, params, blurred):
    return apply_model(module, params, {"blurred": blurred})["kernel"]


def format_table(table: dict, convention: str, *, title: str = "results",
                 model: str = gains.METHOD_LABELS["model"]) -> str:
    """A markdown table of mean PSNR/SSIM per method, naming the metric convention (``model``: the
    model's row label, ``gains.model_label``)."""
    labels = {**gains.METHOD_LABELS, "model": model}
    lines = [f"{title} (metric convention: {convention})", "", "| method | PSNR (dB) | SSIM |", "|---|---|---|"]
    for method, values in table.items():
        lines.append(f"| {labels.get(method, method)} | {values['psnr']:.2f} | {values['ssim']:.4f} |")
    return "\n".join(lines)


def write_table(table: dict, convention: str, path_stem: pathlib.Path, *, title: str,
                model: str = gains.METHOD_LABELS["model"]) -> list[pathlib.Path]:
    """Writes the table as ``<stem>.md`` and ``<stem>.csv``; returns the paths."""
    import csv

    md = path_stem.with_suffix(".md")
    write_text(md, format_table(table, convention, title=title, model=model) + "\n")
    csv_path = path_stem.with_suffix(".csv")
    with replacing(csv_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "psnr", "ssim", "convention"])
        for method, values in table.items():
            writer.writerow([method, f"{values['psnr']:.4f}", f"{values['ssim']:.6f}", convention])
    return [md, csv_path]


def evaluate_workdir(workdir, *, split=None, convention=None, which="best", max_images=None, overrides=(),
                     echo=print) -> dict:
    """Scores a trained run's checkpoint on ``split``; prints and writes the table in the workdir.

    ``overrides`` change how the run is evaluated (``jdeblur.workdir.load_trained``); the tables
    are then written under a name that says so (``eval_<split>_<convention>_<overrides>``).
    """
    from jdeblur import workdir as workdirs

    workdir = pathlib.Path(workdir)
    config, model, params, step = workdirs.load_trained(workdir, which, overrides)
    convention = convention or config.eval.convention
    metrics.get_convention(convention)
    split = split or config.data.eval_split
    with config.unlocked():
        config.eval.max_images = max_images if max_images is not None else config.eval.max_images
    items = make_eval_items(config, split, config.eval.max_images)
    baselines = baseline_scores(items, config.eval, convention)
    table, families, _ = evaluate(model, params, items, config.eval, baselines=baselines, convention=convention)
    title = f"{workdir.name}, checkpoint {step}, split {split}, {len(items)} images"
    if overrides:
        title += ", with " + " ".join("--config." + o.removeprefix("--config.") for o in overrides)
    label = gains.model_label(model)
    echo(format_table(table, convention, title=title, model=label))
    # A file name that says which overrides, without dots (the stem takes the .md and .csv suffixes).
    suffix = "".join("_" + re.sub(r"[^0-9A-Za-z]+", "-", o.removeprefix("--config.")).strip("-") for o in overrides)
    stem = f"eval_{split}_{convention}{suffix}"
    paths = write_table(table, convention, workdir / stem, title=title, model=label)
    result = {"table": table, "by_family": families, "step": step}
    if gains.enabled(config):
        grid = make_grid_items(config, split, config.eval.max_images)
        result["by_noise"] = score_grid(model, params, grid, config, convention=convention,
                                        cache_dir=workdir / "baselines_grid" / f"{split}_{convention}")
        text = gains.format_gains(result["by_noise"], config, convention=convention, model=label, title=title)
        echo(text)
        gains_path = workdir / f"{stem}_gains.md"
        write_text(gains_path, text + "\n")
        paths.append(gains_path)
    echo("written: " + ", ".join(map(str, paths)))
    return result


def check_eval_config(eval_cfg) -> None:
    """Raises UserError, naming the field, unless ``config.eval`` can score a run."""
    check_choice(eval_cfg.convention, "config.eval.convention", metrics.CONVENTIONS)
    check_choice(eval_cfg.pad, "config.eval.pad", infer.PAD_MODES)
    check_positive(eval_cfg.max_pixels, "config.eval.max_pixels")
    for field, least in (("draws", 1), ("seed", 0)):
        value = eval_cfg[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"config.eval.{field}={value!r}: expected an integer >= {least}")
    if eval_cfg.crop is not None:
        check_integer(eval_cfg.crop, "config.eval.crop", 1)
    for family in eval_cfg.blur_families:
        check_choice(family, "config.eval.blur_families", FAMILIES)
