"""Quiet TFDS for the dataset builder tests (their fake source trees use ``write_image``, tests/conftest.py)."""
import logging

import pytest


@pytest.fixture(autouse=True)
def quiet_tfds():
    """TFDS logs a paragraph per build; the tests only need its errors."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
