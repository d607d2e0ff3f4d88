"""Fake source trees for the dataset builders: tiny images written where each test asks."""
import logging
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def quiet_tfds():
    """TFDS logs a paragraph per build; the tests only need its errors."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture
def write_image(rng):
    """``write_image(path, shape=(40, 48, 3), dtype=uint8) -> the array written`` (random pixels)."""

    def write(path, shape=(40, 48, 3), dtype=np.uint8, image=None):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if image is None:
            image = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
        iio.imwrite(path, image)
        return image

    return write
