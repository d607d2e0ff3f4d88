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
import json
import pathlib

import jax
import numpy as np

from jdeblur import infer, metrics
from jdeblur.atomic import replacing, write_json, write_text
from jdeblur.checks import check_choice, check_positive
from jdeblur.errors import UserError
from jdeblur.physics.kernel_mixture import FAMILIES
from jdeblur.restore.fourier import wiener
from jdeblur.restore.richardson_lucy import richardson_lucy

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
    best = None
    for balance in balances:
        restored = np.clip(np.asarray(wiener(blurred, kernel, balance, edge_taper=True)), 0.0, 1.0)
        scores = score_image(restored, sharp, convention)
        if best is None or scores["psnr"] > best[0]["psnr"]:
            best = (scores, restored)
    return best


def baseline_scores(items: list[dict], eval_cfg, convention: str) -> dict[str, list[dict]]:
    """Per-image scores of the blurred input and, where kernels are known, the classical baselines."""
    scores = {"blurred": []}
    has_kernels = all("kernel" in item for item in items)
    if has_kernels:
        scores.update({name: [] for name in BASELINES})
    for item in items:
        blurred, sharp = as_float(item["blurred"]), as_float(item["sharp"])
        scores["blurred"].append(score_image(blurred, sharp, convention))
        if not has_kernels:
            continue
        kernel = np.asarray(item["kernel"], np.float32)
        scores["wiener"].append(_best_wiener(blurred, sharp, kernel, eval_cfg.wiener_balances, convention)[0])
        rl = richardson_lucy(blurred, kernel, num_iter=eval_cfg.rl_iterations, boundary="reflect")
        scores["richardson_lucy"].append(score_image(np.clip(np.asarray(rl), 0.0, 1.0), sharp, convention))
    return scores


def cached_baseline_scores(items, eval_cfg, convention, cache_path: pathlib.Path) -> dict[str, list[dict]]:
    """``baseline_scores``, read from ``cache_path`` when it was computed for the same items and settings."""
    key = {
        "names": [item["name"] for item in items],
        "convention": convention,
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
    scores = baseline_scores(items, eval_cfg, convention)
    if jax.process_index() == 0:
        write_json(cache_path, {"key": key, "scores": scores})
    return scores


def restore_items(module, params, items: list[dict], eval_cfg) -> list[np.ndarray]:
    """The model's restorations of every item's blurred image (float32 HWC in [0, 1])."""
    # One device holds a copy of the parameters: evaluation is a sequence of single full images,
    # and a replicated program would run the same work on every device. Via the host, because
    # arrays placed on the training mesh carry its (Explicit) axes into any program they enter.
    params = jax.device_put(jax.device_get(params), jax.local_devices()[0])
    apply_fn = infer.model_apply_fn(module, params)
    return [
        infer.restore(apply_fn, as_float(item["blurred"]), size_multiple=module.size_multiple,
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
    options = dict(seed=eval_seed(config), split=split, max_images=max_images, draws=config.eval.get("draws", 1))
    if not families or config.data.name in PAIRED:
        return make_eval_set(config.data, config.degrade, **options)
    items = []
    for family in families:
        degrade_cfg = ml_collections.ConfigDict(config.degrade.to_dict())
        degrade_cfg.blur.families, degrade_cfg.blur.weights = (family,), (1.0,)
        items += make_eval_set(config.data, degrade_cfg, **options)
    return items


def eval_seed(config) -> int:
    """The seed of the eval set's degradations: ``eval.seed``, or the experiment's seed where the
    config predates that field (as those versions drew them)."""
    return config.eval.get("seed", config.seed)


def save_sample_grid(items: list[dict], restored: list[np.ndarray], path: pathlib.Path, *, count: int,
                     height: int = 256) -> pathlib.Path | None:
    """Writes a PNG with one row per image: blurred | restored | sharp, each scaled to ``height`` px."""
    if count <= 0 or not items:
        return None
    from PIL import Image

    rows = []
    for item, result in list(zip(items, restored))[:count]:
        panels = [as_float(item["blurred"]), result, as_float(item["sharp"])]
        h, w = panels[0].shape[:2]
        width = max(1, round(w * height / h))
        resized = [np.asarray(Image.fromarray(np.uint8(np.clip(p, 0, 1) * 255 + 0.5)).resize((width, height),
                                                                                            Image.BILINEAR))
                   for p in panels]
        gap = np.full((height, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([resized[0], gap, resized[1], gap, resized[2]], axis=1))
    widest = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, widest - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb") as f:
        Image.fromarray(np.concatenate(rows, axis=0)).save(f, format="PNG")
    return path


METHOD_LABELS = {
    "blurred": "blurred input",
    "wiener": "Wiener, true kernel (oracle balance)",
    "richardson_lucy": "Richardson-Lucy, true kernel",
    "model": "model (blind)",
}


def format_table(table: dict, convention: str, *, title: str = "results") -> str:
    """A markdown table of mean PSNR/SSIM per method, naming the metric convention."""
    lines = [f"{title} (metric convention: {convention})", "", "| method | PSNR (dB) | SSIM |", "|---|---|---|"]
    for method, values in table.items():
        lines.append(f"| {METHOD_LABELS.get(method, method)} | {values['psnr']:.2f} | {values['ssim']:.4f} |")
    return "\n".join(lines)


def write_table(table: dict, convention: str, path_stem: pathlib.Path, *, title: str) -> list[pathlib.Path]:
    """Writes the table as ``<stem>.md`` and ``<stem>.csv``; returns the paths."""
    import csv

    md = path_stem.with_suffix(".md")
    write_text(md, format_table(table, convention, title=title) + "\n")
    csv_path = path_stem.with_suffix(".csv")
    with replacing(csv_path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "psnr", "ssim", "convention"])
        for method, values in table.items():
            writer.writerow([method, f"{values['psnr']:.4f}", f"{values['ssim']:.6f}", convention])
    return [md, csv_path]


def evaluate_workdir(workdir, *, split=None, convention=None, which="best", max_images=None, echo=print) -> dict:
    """Scores a trained run's checkpoint on ``split``; prints and writes the table in the workdir."""
    from jdeblur import workdir as workdirs

    workdir = pathlib.Path(workdir)
    config, model, params, step = workdirs.load_trained(workdir, which)
    convention = convention or config.eval.convention
    metrics.get_convention(convention)
    split = split or config.data.eval_split
    with config.unlocked():
        config.eval.max_images = max_images if max_images is not None else config.eval.max_images
    items = make_eval_items(config, split, config.eval.max_images)
    baselines = baseline_scores(items, config.eval, convention)
    table, families, _ = evaluate(model, params, items, config.eval, baselines=baselines, convention=convention)
    title = f"{workdir.name}, checkpoint {step}, split {split}, {len(items)} images"
    echo(format_table(table, convention, title=title))
    paths = write_table(table, convention, workdir / f"eval_{split}_{convention}", title=title)
    echo("written: " + ", ".join(map(str, paths)))
    return {"table": table, "by_family": families, "step": step}


def check_eval_config(eval_cfg) -> None:
    """Raises UserError, naming the field, unless ``config.eval`` can score a run."""
    check_choice(eval_cfg.convention, "config.eval.convention", metrics.CONVENTIONS)
    check_choice(eval_cfg.pad, "config.eval.pad", infer.PAD_MODES)
    check_positive(eval_cfg.max_pixels, "config.eval.max_pixels")
    for field, least in (("draws", 1), ("seed", 0)):
        value = eval_cfg[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"config.eval.{field}={value!r}: expected an integer >= {least}")
    for family in eval_cfg.blur_families:
        check_choice(family, "config.eval.blur_families", FAMILIES)
