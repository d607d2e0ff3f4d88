"""The shared argument checks: what they accept, and the error class and message of what they refuse."""
import numpy as np
import pytest

from jdeblur import checks
from jdeblur.errors import UserError


def test_check_folder_writable_creates_nothing(tmp_path):
    checks.check_folder_writable(tmp_path / "new" / "deeper", "--output")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file.txt").write_text("a file")
    for path in (tmp_path / "file.txt", tmp_path / "file.txt" / "out"):
        with pytest.raises(UserError, match=f"--output {path}: .*not a folder"):
            checks.check_folder_writable(path, "--output")


def test_choices_and_ranges_are_user_errors_naming_the_field():
    with pytest.raises(UserError, match=r"config.train.parallel: expected one of \['pmap', 'shard_map'\], got 'x'"):
        checks.check_choice("x", "config.train.parallel", ("shard_map", "pmap"))
    with pytest.raises(UserError, match=r"config.train.steps: expected a finite value > 0, got 0"):
        checks.check_positive(0, "config.train.steps")
    checks.check_positive(0, "config.data.cache_mb", allow_zero=True)
    checks.check_integer(np.int64(3), "config.model.rounds", 3)
    for bad in (2, True, 3.0, "3"):  # too small, a bool, a float, a string
        with pytest.raises(UserError, match=f"config.model.rounds: expected an integer >= 3, got {bad!r}"):
            checks.check_integer(bad, "config.model.rounds", 3)
    with pytest.raises(ValueError, match="x: expected") as info:
        checks.check_rank([1.0, 2.0], "x", (4,), "a batch (B, H, W, C)")
    assert not isinstance(info.value, UserError)  # a wrong shape is a caller's bug, not a user's value
