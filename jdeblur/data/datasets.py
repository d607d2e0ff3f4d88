"""One entry point to the datasets: build once into a data directory, then read at random.

``load_dataset(name, split=...)`` returns ``tfds``'s random-access ``ArrayRecordDataSource``:
``len(source)`` records, ``source[i]`` a dict of numpy arrays,

- ``skimage_images``, ``image_folder``: ``{'sharp': uint8 (H, W, 3), 'name': bytes}``;
- ``gopro``, ``paired_folder``: ``{'blurred': uint8 (H, W, 3), 'sharp': uint8 (H, W, 3), 'name': bytes}``.

Images are uint8 RGB, HWC (float32 in [0, 1] only on the device). Record order is TFDS's, fixed
by a hash of each record's key, so it is the same on every machine. Building is not safe to run in
several processes at once into one data_dir: in a multi-host run, build on one process first.
"""
import logging
import os
import pathlib
import threading

import tensorflow_datasets as tfds

from jdeblur.checks import check_choice, check_folder_writable
from jdeblur.data.builders import DatasetLayoutError, ImageFolder, SkimageImages, split_folder
from jdeblur.data.paired_builders import GOPRO_LAYOUT, Gopro, PairedFolder, gopro_pairs, split_pairs
from jdeblur.errors import UserError

BUILDERS = {"skimage_images": SkimageImages, "image_folder": ImageFolder, "gopro": Gopro,
            "paired_folder": PairedFolder}
PAIRED = frozenset({"gopro", "paired_folder"})


def image_keys(name: str) -> tuple[str, ...]:
    """The image entries of a record of dataset ``name``: ``('sharp',)`` or ``('blurred', 'sharp')``."""
    check_choice(name, "name", BUILDERS)
    return ("blurred", "sharp") if name in PAIRED else ("sharp",)


def make_builder(name: str, *, data_dir: str | os.PathLike | None = None,
                 manual_dir: str | os.PathLike | None = None,
                 config: str | dict | None = None) -> tfds.core.DatasetBuilder:
    """The builder of dataset ``name`` (not built yet; see ``load_dataset`` for the arguments)."""
    check_choice(name, "name", BUILDERS)
    cls = BUILDERS[name]
    data_dir = None if data_dir is None else os.fspath(pathlib.Path(data_dir).expanduser())
    if cls in (ImageFolder, PairedFolder):
        if manual_dir is None:
            raise DatasetLayoutError(f"{name}: manual_dir (the source folder) is required", cls.LAYOUT)
        if config is not None and not hasattr(config, "items"):  # A dict, or a ConfigDict from a config file.
            raise UserError(f"config: {name} takes a dict of options {list(cls.SOURCE_OPTIONS)}, got {config!r}")
        builder_config = cls.config_for(manual_dir, **dict(config.items() if config is not None else ()))
    elif cls is Gopro:
        builder_config = config or "blur"
        check_choice(builder_config, "config", [c.name for c in Gopro.BUILDER_CONFIGS])
    else:
        if config is not None:
            raise UserError(f"config: {name} has no configs, got {config!r}")
        builder_config = None
    return cls(data_dir=data_dir, config=builder_config, file_format="array_record")


def _not_about_the_folder_being_built(record: logging.LogRecord) -> bool:
    """False for TFDS's 'Variant folder ... has no dataset_info.json', logged when it looks for a
    dataset it has not built yet: a warning every first build would print, about nothing wrong."""
    return not str(record.msg).startswith("Variant folder")


def build(builder: tfds.core.DatasetBuilder, *, manual_dir: str | os.PathLike | None = None) -> None:
    """Builds ``builder``'s dataset unless its data directory already holds it."""
    manual = None if manual_dir is None else os.fspath(pathlib.Path(manual_dir).expanduser())
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_not_about_the_folder_being_built)
    try:
        if not builder.is_prepared():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    finally:
        absl_logger.removeFilter(_not_about_the_folder_being_built)


def prepare(name: str, *, data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None,
            config: str | dict | None = None) -> tfds.core.DatasetBuilder:
    """The builder of dataset ``name``, built if its data directory does not hold it yet."""
    builder = make_builder(name, data_dir=data_dir, manual_dir=manual_dir, config=config)
    build(builder, manual_dir=manual_dir)
    return builder


def split_source(builder: tfds.core.DatasetBuilder, split: str, **kwargs):
    """The random-access source of ``split`` of a built dataset; a clear error for a missing split."""
    available = sorted(builder.info.splits)
    if split.split("[")[0] not in available:
        raise UserError(f"split: dataset {builder.name} ({builder.data_dir}) has splits {available}, got {split!r}")
    return builder.as_data_source(split=split, **kwargs)


def load_dataset(name: str, *, split: str, data_dir: str | os.PathLike | None = None,
                 manual_dir: str | os.PathLike | None = None, config: str | dict | None = None):
    """Builds dataset ``name`` if needed and returns the random-access source of ``split``.

    Args:
      name: one of ``BUILDERS``.
      split: ``'train'`` or ``'test'`` (a TFDS split spec such as ``'train[:10]'`` also works).
      data_dir: where built datasets live; None is TFDS's default (``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).
      manual_dir: the source folder (``image_folder``, ``paired_folder``, ``gopro``).
      config: ``gopro``: ``'blur'`` (default) or ``'blur_gamma'``; folder builders: a dict of
        options (``test_percent``; ``train_list``/``test_list`` for ``paired_folder``).

    Returns:
      A ``tfds`` ``ArrayRecordDataSource`` (see the module docstring for its records).
    """
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir, config=config)
    return split_source(builder, split)


def check_dataset_config(data_cfg) -> None:
    """Raises UserError, naming the field, unless ``config.data``'s dataset is built or can be built.

    A dataset not built yet needs a writable ``data_dir`` and, for the folder datasets, a source
    folder (``manual_dir``) laid out as its builder expects: both are checked without reading an
    image or writing anything.
    """
    check_choice(data_cfg.name, "config.data.name", BUILDERS)
    absl_logger = logging.getLogger("absl")  # TFDS warns about unbuilt configs while we only look
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        builder = make_builder(data_cfg.name, data_dir=data_cfg.data_dir, manual_dir=data_cfg.manual_dir,
                               config=data_cfg.builder_config)
        if builder.is_prepared():
            return
    finally:
        absl_logger.setLevel(level)
    check_folder_writable(builder.data_dir, "config.data.data_dir")
    if data_cfg.name == "image_folder":
        source = builder.builder_config
        split_folder(pathlib.Path(source.source), source.test_percent, ImageFolder.LAYOUT)
    elif data_cfg.name == "paired_folder":
        split_pairs(builder.builder_config)
    elif data_cfg.name == "gopro":
        if data_cfg.manual_dir is None or not pathlib.Path(data_cfg.manual_dir).is_dir():
            raise DatasetLayoutError(
                f"config.data.manual_dir={data_cfg.manual_dir!r}: gopro is not built in {builder.data_dir} yet, "
                f"and its source folder is missing", GOPRO_LAYOUT)
        gopro_pairs(data_cfg.manual_dir, builder.builder_config.name)  # the layout, before any write


class MemoryCache:
    """A random-access source that keeps the records it has read, up to ``max_bytes`` of arrays.

    Reading a record means decompressing a whole image to cut one patch from it, which costs 30
    times the augmentation: a small dataset (the embedded default is 16 MB) is read from disk
    once per process and then served from memory. Records are kept first come, first kept until
    the budget is spent (under uniform random access an LRU policy would hit no more often).
    Each worker process has its own cache.
    """

    def __init__(self, source, max_bytes: int):
        self._source, self._max_bytes = source, max_bytes
        self._records, self._bytes, self._lock = {}, 0, threading.Lock()

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int):
        record = self._records.get(index)
        if record is None:
            record = self._source[index]
            size = sum(getattr(v, "nbytes", 0) for v in record.values())
            with self._lock:
                if self._bytes + size <= self._max_bytes:
                    self._records[index], self._bytes = record, self._bytes + size
        return record

    def __getstate__(self):  # Sent to a worker process empty: it fills its own.
        return {"source": self._source, "max_bytes": self._max_bytes}

    def __setstate__(self, state):
        self.__init__(state["source"], state["max_bytes"])
