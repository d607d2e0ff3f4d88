"""TFDS builders of sharp images for synthetic blur: the embedded default and a user's folder.

Built as ``array_record`` with no TensorFlow installed: every image is a
``tfds.features.Tensor(shape=(None, None, 3), dtype=uint8, encoding=BYTES)`` (``tfds.features.Image``
needs TensorFlow to encode PNG). The BYTES encoding stores raw pixels and lets ArrayRecord's own
zstd compress them: the same size on disk as ZLIB and about 1.5x faster to read.

Records are ``{'sharp': uint8 HxWx3, 'name': bytes}``; paired builders (``paired_builders.py``)
add ``'blurred'``. Pixels are uint8 RGB, HWC; the train step converts them to float32 in [0, 1].

A folder builder's config is named after its source (see ``SourceConfig.for_source``), so two
folders never share a built dataset in one ``data_dir``.
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import re

import numpy as np
import skimage.data
import tensorflow_datasets as tfds

from jdeblur.data.images import list_images, read_image, to_rgb_uint8
from jdeblur.errors import UserError

VERSION = tfds.core.Version("1.0.0")


class DatasetLayoutError(UserError):
    """A source folder (``manual_dir``) is missing or not laid out as its builder expects."""

    def __init__(self, problem: str, layout: str):
        super().__init__(f"{problem}\nExpected layout:\n{layout}")


def image_tensor() -> tfds.features.Tensor:
    """The feature of one variable-size uint8 RGB image (works without TensorFlow)."""
    return tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)


def image_features(keys: tuple[str, ...]) -> tfds.features.FeaturesDict:
    """Features of a record: one image per key, plus the item's ``name`` (its source path)."""
    return tfds.features.FeaturesDict({**{k: image_tensor() for k in keys}, "name": tfds.features.Text()})


def hash_bucket(name: str) -> int:
    """A stable bucket in 0..99 for ``name`` (a relative path), independent of the other files."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100


def hash_split(names: list[str], test_percent: int) -> dict[str, list[str]]:
    """Splits ``names`` by hash: ``name`` is test iff ``hash_bucket(name) < test_percent``.

    The rule is per file, so adding files does not move existing ones between splits. If it leaves
    the test split empty while ``test_percent > 0`` (a small folder), the name with the lowest
    bucket goes to test, until a file that the rule itself sends to test is added.
    """
    test = [n for n in names if hash_bucket(n) < test_percent]
    if not test and test_percent > 0 and names:
        test = [min(names, key=lambda n: (hash_bucket(n), n))]
    test_set = set(test)
    return {"train": [n for n in names if n not in test_set], "test": test}


@dataclasses.dataclass(eq=False)
class SourceConfig(tfds.core.BuilderConfig):
    """A folder builder's config: where the files are and how to split them.

    Attributes:
      source: the folder (absolute path).
      test_percent: share (0..100) of files sent to the test split by ``hash_split`` when the
        folder has no ``train/``/``test/`` subfolders.
      train_list, test_list: list files of pairs (paired builder only), relative to ``source``.
    """

    source: str = ""
    test_percent: int = 10
    train_list: str | None = None
    test_list: str | None = None

    @classmethod
    def for_source(cls, source: os.PathLike | str, **options) -> "SourceConfig":
        """A config named ``<folder name>_<10 hex digits of a hash of the path and all options>``.

        The name is what keeps two sources apart in one data_dir: the dataset is stored under
        ``data_dir/<builder>/<config name>/<version>``. The hash covers the resolved path and the
        split options, not the files: after changing a folder's contents, delete that directory
        to rebuild.
        """
        source = str(pathlib.Path(source).expanduser().resolve())
        config = cls(name="", source=source, description=f"built from {source}", **options)
        if not (isinstance(config.test_percent, int) and 0 <= config.test_percent <= 100):
            raise UserError(f"test_percent: expected an integer in 0..100, got {config.test_percent!r}")
        fields = ("source", "test_percent", "train_list", "test_list")
        identity = json.dumps({f: getattr(config, f) for f in fields}, sort_keys=True)
        slug = re.sub(r"[^a-z0-9]+", "_", pathlib.Path(source).name.lower()).strip("_") or "root"
        config.name = f"{slug}_{hashlib.sha1(identity.encode()).hexdigest()[:10]}"
        return config


class FromSource:
    """Mixin of the builders whose config names their source folder (see ``SourceConfig``)."""

    LAYOUT: str  # The expected layout of the source folder, printed with every DatasetLayoutError.
    SOURCE_OPTIONS: tuple[str, ...] = ("test_percent",)
    SOURCE_DEFAULTS: dict = {}

    @classmethod
    def config_for(cls, source: os.PathLike | str, **options) -> SourceConfig:
        """The config of ``source`` with this builder's default options under ``options``."""
        unknown = set(options) - set(cls.SOURCE_OPTIONS)
        if unknown:
            raise UserError(f"config: unknown options {sorted(unknown)} for {cls.name}; "
                             f"expected some of {list(cls.SOURCE_OPTIONS)}")
        return SourceConfig.for_source(source, **{**cls.SOURCE_DEFAULTS, **options})

    def source_config(self) -> SourceConfig:
        """This builder's config, checked to be a ``SourceConfig``."""
        if not isinstance(self.builder_config, SourceConfig):
            raise UserError(f"{self.name}: pass config={type(self).__name__}.config_for(folder) "
                             "(load_dataset does)")
        return self.builder_config


class OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of our builders: nothing to download, so no checksums file next to the code."""

    VERSION = VERSION
    # TFDS looks for a checksums file beside the builder's module, and the look-up imports the
    # ``importlib_resources`` backport that tfds 4.9.10 only requires on Python < 3.9
    # (tensorflow/datasets#11212): without a download there is nothing to check, so skip it.
    code_path = None

    # TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown size, ...)"
    # before a build, which tells a user that something is downloaded. Nothing is: say what happens.
    def _log_download_bytes(self) -> None:
        print(f"Building dataset {self.name} from local files (nothing is downloaded) in {self.data_dir}",
              flush=True)

    def _log_download_done(self) -> None:
        print(f"Dataset {self.name} built in {self.data_dir}", flush=True)


class SharpImagesBuilder(OfflineBuilder):
    """Shared parts of the builders of sharp-only images."""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=image_features(("sharp",)))

    def _generate_examples(self, items):
        """Yields ``(key, record)`` for ``items`` of ``(name, loader)``; ``loader()`` returns the image."""
        for name, load in items:
            yield name, {"sharp": load(), "name": name}


# The natural photographs shipped inside scikit-image (no download, no network). Licences are
# from the skimage.data docstrings: all public domain, CC0, or "no known copyright restrictions".
# Left out: synthetic or non-photographic images (checkerboard, colorwheel, logo, horse, text,
# page, shepp_logan_phantom, cell), the tiny microaneurysms, and clock (motion-blurred already).
# The split is by image and fixed. motorcycle_left/right are two views of one scene, so both are
# in train to keep near-duplicates out of the test split.
SKIMAGE_TRAIN = {
    "astronaut": "NASA, public domain",
    "rocket": "SpaceX, public domain",
    "hubble_deep_field": "NASA/ESA, public domain",
    "immunohistochemistry": "CMMI, no known copyright restrictions",
    "retina": "M. Haggstrom, CC0",
    "motorcycle_left": "Middlebury 2014 stereo (Scharstein et al.), downsampled x4",
    "motorcycle_right": "Middlebury 2014 stereo (Scharstein et al.), downsampled x4",
    "coins": "Brooklyn Museum, no known copyright restrictions",
    "moon": "skimage test image, no known restrictions",
    "grass": "CC0 (DeviantArt linolafett), gray",
    "brick": "CC0 Textures, gray",
}
SKIMAGE_TEST = {
    "camera": "L. Varshney, CC0, gray",
    "chelsea": "S. van der Walt, CC0",
    "coffee": "R. Michetti, CC0",
    "gravel": "CC0 Textures, gray",
}


# Photographs from another package and another photographer, never seen in training or model
# selection: the check that a result holds beyond the test split of the same collection.
EXTERNAL = {
    "grace_hopper": "matplotlib sample data; U.S. Navy photograph, public domain",
}


def skimage_image(name: str) -> np.ndarray:
    """One of the embedded photographs as uint8 HxWx3 (gray ones replicated)."""
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return read_image(f.name)
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    else:
        image = getattr(skimage.data, name)()
    return to_rgb_uint8(image, name=name)


class SkimageImages(SharpImagesBuilder):
    """Natural photographs shipped inside scikit-image, split by image; builds in seconds offline.

    Splits: ``train`` and ``test`` (``SKIMAGE_TRAIN``, ``SKIMAGE_TEST``), and ``external``
    (``EXTERNAL``: photographs from outside scikit-image, for a check on unseen sources).
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "external split", "1.0.0": "train and test splits"}

    def _split_generators(self, dl_manager):
        def items(names):
            return [(n, lambda n=n: skimage_image(n)) for n in sorted(names)]

        return {"train": self._generate_examples(items(SKIMAGE_TRAIN)),
                "test": self._generate_examples(items(SKIMAGE_TEST)),
                "external": self._generate_examples(items(EXTERNAL))}


IMAGE_FOLDER_LAYOUT = """\
  SOURCE/train/**/*.png|jpg|...   and   SOURCE/test/**/*.png|jpg|...   (splits as given), or
  SOURCE/**/*.png|jpg|...         (split by a hash of each relative path: test_percent % to test)
Images may be 8- or 16-bit, gray, RGB or RGBA; they are stored as uint8 RGB."""


def split_folder(source: pathlib.Path, test_percent: int, layout: str) -> dict[str, list[str]]:
    """Relative image paths of ``source`` per split (``train/``/``test/`` subfolders, else by hash)."""
    if not source.is_dir():
        raise DatasetLayoutError(f"image_folder: source folder {source} does not exist", layout)
    if (source / "train").is_dir() or (source / "test").is_dir():
        splits = {s: [f"{s}/{p.as_posix()}" for p in list_images(source / s)] if (source / s).is_dir() else []
                  for s in ("train", "test")}
    else:
        splits = hash_split([p.as_posix() for p in list_images(source)], test_percent)
    if not any(splits.values()):
        raise DatasetLayoutError(f"image_folder: no image files found under {source}", layout)
    return splits


class ImageFolder(FromSource, SharpImagesBuilder):
    """A user's sharp photographs (e.g. DIV2K) read from a folder, for synthetic blur."""

    LAYOUT = IMAGE_FOLDER_LAYOUT
    SOURCE_DEFAULTS = {"test_percent": 10}

    def _split_generators(self, dl_manager):
        config = self.source_config()
        source = pathlib.Path(config.source)
        splits = split_folder(source, config.test_percent, self.LAYOUT)
        return {split: self._generate_examples([(n, lambda n=n: read_image(source / n)) for n in names])
                for split, names in splits.items() if names}
