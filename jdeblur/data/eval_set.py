"""The evaluation set: full-size test images with fixed, saved degradations (or real pairs).

For synthetic blur, every test image gets ``draws`` degradations drawn once from the eval seed
with ``jdeblur.physics.degrade.degrade_with_info`` (the same kernel mixture and noise as
training), with a boundary that suits full images (``'reflect'`` where training uses
``'valid'``). The key of draw ``d`` of an image is
``fold_in(fold_in(key(seed), EVAL_STREAM), crc32(draw_name(name, d)))``, so a degradation depends
only on the seed, the config, the image's name and the draw: a subset of the test set
(``max_images``) keeps the draws of the images it keeps, and asking for more draws keeps the
first ones. A dozen draws give a noisy mean (the kernels differ a lot in how much they destroy);
more draws per image make the figure of a few test photos steadier.

The draws are saved on first use, in ``<cache_dir or the built dataset's directory>/eval_sets/
<split>_<hash>/``: ``table.npz`` (names, kernels, noise sigmas, families) and one
``blurred_<i>.npy`` (float32) per item. The hash covers the seed, the degradation config, the
dataset and split, the image names, the number of draws and the crop, so every run of an
experiment reads the same inputs, bit for bit, whatever machine or backend computed them first.

With ``crop`` set, every test image (and, for real pairs, its blurred input) is its central
``crop`` x ``crop`` pixels (a shorter side kept whole), degraded as a photograph of that size: a
fraction of the pixels, and one shape for all images at least that large, so that each program
compiles once. The ``runlocal`` variants score crops; full experiments score whole images.

Items are dicts with HWC float32 images in [0, 1]: ``{'name', 'blurred', 'sharp'}``, plus
``'kernel'`` (float32 (size, size)), ``'noise_sigma'`` (float) and ``'family'`` (int, an index
into ``kernel_mixture.FAMILIES``) for synthetic blur. For real pairs (``gopro``,
``paired_folder``) the items are the pairs themselves, in the dataset's (fixed) record order.
"""
import collections.abc
import hashlib
import json
import pathlib
import zlib

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jdeblur.atomic import new_folder
from jdeblur.checks import check_integer
from jdeblur.data.datasets import PAIRED, prepare, split_source
from jdeblur.errors import UserError
from jdeblur.physics.degrade import degrade_with_info

EVAL_STREAM = zlib.crc32(b"eval_set")
FORMAT_VERSION = 1  # Part of the hash: bump when the saved layout or the draw changes.

_degrade = jax.jit(degrade_with_info, static_argnums=2)


def full_image_config(degrade_cfg) -> ml_collections.FrozenConfigDict:
    """``degrade_cfg`` with a full-image boundary (``'reflect'`` instead of ``'valid'``), frozen."""
    cfg = ml_collections.ConfigDict(degrade_cfg.to_dict())
    if cfg.boundary == "valid":
        cfg.boundary = "reflect"
    return ml_collections.FrozenConfigDict(cfg)


def draw_name(name: str, draw: int) -> str:
    """The name whose key gives draw ``draw`` of image ``name``: the name itself for the first."""
    return name if draw == 0 else f"{name}#{draw}"


def image_key(seed: int, name: str) -> jax.Array:
    """The key of test image ``name`` (or ``draw_name``) under the eval ``seed``."""
    eval_key = jax.random.fold_in(jax.random.key(seed), EVAL_STREAM)
    return jax.random.fold_in(eval_key, zlib.crc32(name.encode()))


def as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 HWC to float32 in [0, 1]."""
    return np.asarray(image, np.float32) / 255.0


def central_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of an HWC image (a shorter side whole); None: the image."""
    if size is None:
        return image
    top, left = (max(0, (n - size) // 2) for n in image.shape[:2])
    return image[top:top + size, left:left + size]


class EvalSet(collections.abc.Sequence):
    """The items of an evaluation set, read on access (sharp images from the dataset, inputs from disk).

    Args:
      source: the split's random-access source.
      indices: the record index of each item, in item order.
      folder: the saved degradations (synthetic blur), or None for real pairs.
      crop: the side of the central crop of each image (``central_crop``), or None.
    """

    def __init__(self, source, indices: list[int], folder: pathlib.Path | None = None, *, crop: int | None = None):
        self._source, self._indices, self._folder, self._crop = source, indices, folder, crop
        self._table = None
        if folder is not None:
            with np.load(folder / "table.npz") as table:
                self._table = {k: table[k] for k in table.files}

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i %= len(self)
        record = self._source[self._indices[i]]
        item = {"name": record["name"].decode(), "sharp": central_crop(as_unit_float(record["sharp"]), self._crop)}
        if self._table is None:
            item["blurred"] = central_crop(as_unit_float(record["blurred"]), self._crop)
            return item
        if item["name"] != self._table["names"][i]:
            raise UserError(f"eval set {self._folder}: record {self._indices[i]} is {item['name']!r}, "
                             f"expected {self._table['names'][i]!r}; the dataset was rebuilt, delete the folder")
        item["blurred"] = np.load(self._folder / f"blurred_{i}.npy")
        item["kernel"] = self._table["kernels"][i]
        item["noise_sigma"] = float(self._table["noise_sigmas"][i])
        item["family"] = int(self._table["families"][i])
        return item


def record_names(source) -> list[str]:
    """The ``name`` of every record of a source (reads each record once)."""
    return [source[i]["name"].decode() for i in range(len(source))]


def draw_degradations(source, indices: list[int], names: list[str], cfg, seed: int, folder: pathlib.Path,
                      draws: list[int], *, crop: int | None = None) -> None:
    """Degrades each item (image ``names[i]``, its draw ``draws[i]``, its central ``crop``) and saves
    the inputs and the table in ``folder`` (atomically)."""
    kernels, sigmas, families = [], [], []
    with new_folder(folder) as scratch:  # another process that saved the same draws first keeps its folder
        for i, (index, name, draw) in enumerate(zip(indices, names, draws)):
            sharp = central_crop(as_unit_float(source[index]["sharp"]), crop)[None]
            degradation = jax.device_get(_degrade(image_key(seed, draw_name(name, draw)), sharp, cfg))
            np.save(scratch / f"blurred_{i}.npy", np.asarray(degradation.y[0], np.float32))
            kernels.append(degradation.kernel[0])
            sigmas.append(degradation.noise_sigma[0])
            families.append(degradation.family[0])
        np.savez(scratch / "table.npz", names=np.array(names), kernels=np.stack(kernels).astype(np.float32),
                 noise_sigmas=np.array(sigmas, np.float32), families=np.array(families, np.int32))


def make_eval_set(data_cfg, degrade_cfg, *, seed: int, split: str = "test", cache_dir=None,
                  max_images: int | None = None, draws: int = 1, crop: int | None = None) -> EvalSet:
    """The evaluation set of an experiment (see the module docstring).

    Args:
      data_cfg: the data config (``jdeblur.data.pipeline.default_data_config()``).
      degrade_cfg: the degradation config (``jdeblur.physics.degrade.default_degrade_config()``);
        unused for real pairs.
      seed: the eval seed (an int; ``config.eval.seed``).
      split: the dataset split.
      cache_dir: where to save the draws; None: inside the built dataset's directory.
      max_images: keep the first ``max_images`` images (by name for synthetic blur); None: all.
      draws: degradations per image (synthetic blur; the items are image 0's draws, then
        image 1's, ...); real pairs have one each.
      crop: score the central ``crop`` x ``crop`` pixels of each image (see the module docstring);
        None: the whole images.

    Returns:
      An ``EvalSet``: a sequence of item dicts, read on access.
    """
    builder = prepare(data_cfg.name, data_dir=data_cfg.data_dir, manual_dir=data_cfg.manual_dir,
                      config=data_cfg.builder_config)
    source = split_source(builder, split)
    count = len(source) if max_images is None else min(max_images, len(source))
    if crop is not None:
        check_integer(crop, "crop", 1)
    if data_cfg.name in PAIRED:
        return EvalSet(source, list(range(count)), crop=crop)
    check_integer(draws, "draws", 1)
    if degrade_cfg is None:
        raise ValueError(f"degrade_cfg: dataset {data_cfg.name} holds sharp images only; expected the "
                         "degradation config that makes their blurred inputs, got None")
    names_source = split_source(builder, split, decoders={"sharp": tfds.decode.SkipDecoding()})
    by_name = sorted((name, index) for index, name in enumerate(record_names(names_source)))[:count]
    names = [n for n, _ in by_name for _ in range(draws)]
    indices = [i for _, i in by_name for _ in range(draws)]
    draw_of = list(range(draws)) * len(by_name)
    cfg = full_image_config(degrade_cfg)
    # The names, one per item, also count the draws (and with one draw are what they were before
    # draws existed, so the sets saved then stay valid); likewise the crop, named only when set.
    identity = {"format": FORMAT_VERSION, "seed": int(seed), "degrade": cfg.to_dict(),
                "dataset": builder.name, "config": getattr(builder.builder_config, "name", None),
                "version": str(builder.version), "split": split, "names": names}
    if crop is not None:
        identity["crop"] = int(crop)
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()[:16]
    root = pathlib.Path(cache_dir) if cache_dir is not None else pathlib.Path(builder.data_dir) / "eval_sets"
    folder = root / f"{split.replace('[', '_').replace(']', '').replace(':', '-')}_{digest}"
    if not (folder / "table.npz").is_file():
        draw_degradations(source, indices, names, cfg, int(seed), folder, draw_of, crop=crop)
    return EvalSet(source, indices, folder, crop=crop)
