"""``launch.py import-weights`` then ``deblur`` on a folder, end to end on the official-format fixture."""
import hashlib
import json

import imageio.v3 as iio
import numpy as np
import pytest

from jdeblur import cli
from tests.weights.official_fixture import BLOCKS, FIXTURES, OFFICIAL, TENSORS

# gopro_nafnet's runlocal NAFNet with the fixture's width and blocks, without TLC.
MODEL = f"--config.model.kwargs={BLOCKS!r}"


@pytest.mark.slow
def test_import_weights_then_deblur_a_folder(tmp_path, capsys):
    checkpoint, workdir = OFFICIAL, tmp_path / "official"
    command = ["import-weights", "--checkpoint", checkpoint, "--config", "gopro_nafnet:runlocal", "--workdir",
               workdir, MODEL]
    assert cli.main([str(a) for a in command]) == 0
    source = json.loads((workdir / "run.json").read_text())["imported_from"]
    assert source["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert source["key"] == "params" and source["tensors"] == TENSORS

    io = np.load(FIXTURES / "io.npz")
    (tmp_path / "photos").mkdir()
    iio.imwrite(tmp_path / "photos" / "a.png", io["photo"][0])
    assert cli.main(["deblur", "--workdir", str(workdir), "--input", str(tmp_path / "photos"),
                        "--output", str(tmp_path / "out")]) == 0
    restored = iio.imread(tmp_path / "out" / "a.png").astype(int)
    expected = io["photo_out"][0].astype(int)  # the official model's output, rounded as tensor2img rounds
    assert restored.shape == expected.shape and np.abs(restored - expected).max() <= 1
    assert np.mean(restored == expected) > 0.99  # off by one only where float rounding straddles a level

    capsys.readouterr()
    assert cli.main([str(a) for a in command]) == 2  # the workdir holds a run now
    assert "already holds a run" in capsys.readouterr().err
