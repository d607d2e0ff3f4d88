"""TFDS builders of real blurred/sharp pairs: GoPro, and any paired folder (HIDE, RealBlur, ...).

Records are ``{'blurred': uint8 HxWx3, 'sharp': uint8 HxWx3, 'name': bytes}`` with both images of
the same size, stored as in ``builders.py`` (array_record, no TensorFlow, uint8 RGB HWC).
"""
import pathlib

import tensorflow_datasets as tfds

from jdeblur.data.builders import (
    DatasetLayoutError,
    FromSource,
    OfflineBuilder,
    SourceConfig,
    hash_split,
    image_features,
)
from jdeblur.data.images import list_images, read_image
from jdeblur.errors import UserError

# Folder names accepted for the two sides of a pair (GoPro/HIDE use blur/sharp, the re-packaged
# test sets of Restormer-style repos use input/target, RealBlur uses blur/gt).
BLUR_DIRS = ("blur", "blurred", "input")
SHARP_DIRS = ("sharp", "gt", "target", "groundtruth")


Pair = tuple[str, pathlib.Path, pathlib.Path]  # (name, blurred image file, sharp image file)


def pair_files(blur_dir: pathlib.Path, sharp_dir: pathlib.Path, layout: str) -> list[Pair]:
    """Pairs the images of two folders by relative path without suffix: ``[(stem, blurred, sharp)]``."""
    blurred = {p.with_suffix("").as_posix(): blur_dir / p for p in list_images(blur_dir)}
    sharp = {p.with_suffix("").as_posix(): sharp_dir / p for p in list_images(sharp_dir)}
    unmatched = sorted(set(blurred) ^ set(sharp))
    if unmatched:
        raise DatasetLayoutError(
            f"{len(unmatched)} images of {blur_dir} and {sharp_dir} have no counterpart with the same name, "
            f"e.g. {unmatched[:5]}", layout)
    if not blurred:
        raise DatasetLayoutError(f"no image files in {blur_dir}", layout)
    return [(stem, blurred[stem], sharp[stem]) for stem in sorted(blurred)]


def find_side(folder: pathlib.Path, names: tuple[str, ...]) -> pathlib.Path | None:
    """The first subfolder of ``folder`` called one of ``names``, or None."""
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def read_pair(blurred_path: pathlib.Path, sharp_path: pathlib.Path) -> dict:
    """Reads a pair; raises ValueError if the two images differ in size."""
    blurred, sharp = read_image(blurred_path), read_image(sharp_path)
    if blurred.shape != sharp.shape:
        raise UserError(f"pair {blurred_path} / {sharp_path}: sizes differ, {blurred.shape} vs {sharp.shape}")
    return {"blurred": blurred, "sharp": sharp}


class PairsBuilder(OfflineBuilder):
    """Shared parts of the builders of blurred/sharp pairs."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__,
                                     features=image_features(("blurred", "sharp")))

    def _generate_examples(self, pairs):
        """Yields ``(name, record)`` for ``pairs`` of ``(name, blurred path, sharp path)``."""
        for name, blurred_path, sharp_path in pairs:
            yield name, {**read_pair(blurred_path, sharp_path), "name": name}


GOPRO_LAYOUT = """\
  MANUAL_DIR/[GOPRO_Large/]train/<scene>/blur/*.png
  MANUAL_DIR/[GOPRO_Large/]train/<scene>/blur_gamma/*.png
  MANUAL_DIR/[GOPRO_Large/]train/<scene>/sharp/*.png
  MANUAL_DIR/[GOPRO_Large/]test/<scene>/...           (same as train)
(GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro, extracted; blur or blur_gamma
is chosen by the builder config; names in blur*/ and sharp/ match.)"""


def gopro_pairs(manual_dir, blur_name: str = "blur") -> dict[str, list[Pair]]:
    """The pairs of each split of a GoPro tree laid out as ``GOPRO_LAYOUT``, found without reading images.

    Args:
      manual_dir: the folder holding ``GOPRO_Large/`` (or its contents).
      blur_name: the blurred frames' folder in each scene, ``'blur'`` or ``'blur_gamma'``.

    Raises:
      DatasetLayoutError: naming the folder at fault and giving the expected layout: a missing
        folder, split, or side of a scene, a split without scenes, a scene without pairs, or
        images without a counterpart of the same name.
    """
    manual_dir = pathlib.Path(manual_dir)
    if not manual_dir.is_dir():
        raise DatasetLayoutError(f"gopro: manual_dir {manual_dir} does not exist", GOPRO_LAYOUT)
    root = manual_dir / "GOPRO_Large" if (manual_dir / "GOPRO_Large").is_dir() else manual_dir
    splits = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DatasetLayoutError(f"gopro: no folder {root / split}", GOPRO_LAYOUT)
        pairs = []
        for scene in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            blur_dir, sharp_dir = scene / blur_name, scene / "sharp"
            if not (blur_dir.is_dir() and sharp_dir.is_dir()):
                raise DatasetLayoutError(f"gopro: scene {scene} lacks {blur_name}/ or sharp/", GOPRO_LAYOUT)
            pairs += [(f"{scene.name}/{stem}", blurred, sharp)
                      for stem, blurred, sharp in pair_files(blur_dir, sharp_dir, GOPRO_LAYOUT)]
        if not pairs:
            raise DatasetLayoutError(f"gopro: no scenes in {root / split}", GOPRO_LAYOUT)
        splits[split] = pairs
    return splits


class Gopro(PairsBuilder):
    """GoPro (Nah et al., CVPR 2017): 2103 train and 1111 test pairs of 1280x720 frames."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = GOPRO_LAYOUT
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="blur", description="blurred frames averaged in linear-ish (camera) space"),
        tfds.core.BuilderConfig(name="blur_gamma", description="blurred frames averaged after a gamma curve"),
    ]

    def _split_generators(self, dl_manager):
        try:
            manual_dir = pathlib.Path(dl_manager.manual_dir)
        except AssertionError:  # TFDS's way of saying "missing or empty".
            raise DatasetLayoutError("gopro: manual_dir is missing or empty; pass the folder that holds "
                                     "GOPRO_Large", GOPRO_LAYOUT) from None
        return {split: self._generate_examples(pairs)
                for split, pairs in gopro_pairs(manual_dir, self.builder_config.name).items()}


PAIRED_FOLDER_LAYOUT = f"""\
  one of, in this order of precedence:
  1. list files (config train_list / test_list, relative to SOURCE), one pair per line,
     "SHARP_PATH BLURRED_PATH" relative to SOURCE (RealBlur's RealBlur_J_train_list.txt order: gt first);
  2. SOURCE/train/BLUR/** and SOURCE/train/SHARP/**, SOURCE/test/BLUR/** and SOURCE/test/SHARP/**;
  3. SOURCE/BLUR/** and SOURCE/SHARP/**, split by a hash of the name (test_percent; 100 = all test).
  BLUR is one of {'|'.join(BLUR_DIRS)}; SHARP is one of {'|'.join(SHARP_DIRS)};
  blurred and sharp images pair by relative path without suffix."""


def read_pair_list(source: pathlib.Path, list_file: str) -> list[Pair]:
    """Pairs from a list file of ``sharp blurred`` lines (extra columns ignored, blank lines skipped)."""
    path = source / list_file
    if not path.is_file():
        raise DatasetLayoutError(f"paired_folder: list file {path} not found", PAIRED_FOLDER_LAYOUT)
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DatasetLayoutError(f"paired_folder: {path}:{number}: expected 'SHARP BLURRED', got {line!r}",
                                     PAIRED_FOLDER_LAYOUT)
        sharp, blurred = source / fields[0], source / fields[1]
        for p in (sharp, blurred):
            if not p.is_file():
                raise DatasetLayoutError(f"paired_folder: {path}:{number}: no file {p}", PAIRED_FOLDER_LAYOUT)
        # The blurred path names the pair: RealBlur's gt/blur file names repeat across scenes.
        pairs.append((fields[1], blurred, sharp))
    if not pairs:
        raise DatasetLayoutError(f"paired_folder: list file {path} holds no pairs", PAIRED_FOLDER_LAYOUT)
    return pairs


def split_pairs(config: SourceConfig) -> dict[str, list[Pair]]:
    """The pairs of a paired folder per split, by the first layout of PAIRED_FOLDER_LAYOUT that applies."""
    source = pathlib.Path(config.source)
    if not source.is_dir():
        raise DatasetLayoutError(f"paired_folder: source folder {source} does not exist", PAIRED_FOLDER_LAYOUT)
    lists = {"train": config.train_list, "test": config.test_list}
    if any(lists.values()):
        return {split: read_pair_list(source, f) for split, f in lists.items() if f}
    if (source / "train").is_dir() or (source / "test").is_dir():
        splits = {}
        for split in ("train", "test"):
            if (source / split).is_dir():
                blur_dir, sharp_dir = find_side(source / split, BLUR_DIRS), find_side(source / split, SHARP_DIRS)
                if blur_dir is None or sharp_dir is None:
                    raise DatasetLayoutError(f"paired_folder: {source / split} lacks a blurred or a sharp folder",
                                             PAIRED_FOLDER_LAYOUT)
                splits[split] = [(f"{split}/{stem}", b, s) for stem, b, s in
                                 pair_files(blur_dir, sharp_dir, PAIRED_FOLDER_LAYOUT)]
        return splits
    blur_dir, sharp_dir = find_side(source, BLUR_DIRS), find_side(source, SHARP_DIRS)
    if blur_dir is None or sharp_dir is None:
        raise DatasetLayoutError(f"paired_folder: {source} has no list file, train/test folders, or blurred and "
                                 "sharp folders", PAIRED_FOLDER_LAYOUT)
    pairs = {stem: (stem, b, s) for stem, b, s in pair_files(blur_dir, sharp_dir, PAIRED_FOLDER_LAYOUT)}
    return {split: [pairs[stem] for stem in stems]
            for split, stems in hash_split(sorted(pairs), config.test_percent).items()}


class PairedFolder(FromSource, PairsBuilder):
    """Blurred/sharp pairs from a folder or list files: HIDE, RealBlur, or a user's own pairs."""

    LAYOUT = PAIRED_FOLDER_LAYOUT
    SOURCE_OPTIONS = ("test_percent", "train_list", "test_list")
    # Flat blur/sharp folders are usually benchmark test sets (HIDE, RealBlur-J test): all test.
    SOURCE_DEFAULTS = {"test_percent": 100}

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(pairs)
                for split, pairs in split_pairs(self.source_config()).items() if pairs}
