"""A non-blind run through launch.py (experiments/nonblind.py:runlocal, trained once here): deblur with
--kernel files and the noise estimate, bad kernels, and eval with overrides (plug-and-play with more
stages of the trained prior)."""
import imageio.v3 as iio
import numpy as np
import pytest

from jdeblur import cli, kernel_files
from tests.launching import check_runlocal_outputs, launch_py, usage_error_in_process


@pytest.fixture(scope="module")
def nonblind_run(env, data_dir, tmp_path_factory):
    """The experiment's runlocal as its docstring runs it (tests/test_experiments.py leaves it to this file)."""
    workdir = tmp_path_factory.mktemp("nonblind") / "run"
    result = launch_py(env, "train", "--config", "experiments/nonblind.py:runlocal", "--workdir", workdir,
                       f"--config.data.data_dir={data_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_runlocal_trains_and_scores_the_gains_by_noise_level_and_family(nonblind_run):
    check_runlocal_outputs(nonblind_run)


@pytest.mark.slow
def test_deblur_a_folder_with_a_kernel_file_and_bad_kernels(nonblind_run, tmp_path, rng, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    iio.imwrite(photos / "rgb.png", rng.integers(0, 256, (30, 41, 3), dtype=np.uint8))
    iio.imwrite(photos / "gray16.png", rng.integers(0, 65536, (25, 20), dtype=np.uint16))
    kernel = np.zeros((5, 5), np.float32)
    kernel[2, 1:4] = 2.0  # a 3-px horizontal motion, not normalised: the reader does it
    np.save(tmp_path / "k.npy", kernel)
    # In this process (its compiled programs shared by the calls), as a user's launch.py runs it.
    assert cli.main(["deblur", "--workdir", str(nonblind_run), "--input", str(photos),
                        "--output", str(tmp_path / "out"), "--kernel", str(tmp_path / "k.npy")]) == 0
    stdout = capsys.readouterr().out
    assert iio.imread(tmp_path / "out" / "rgb.png").shape == (30, 41, 3)
    gray = iio.imread(tmp_path / "out" / "gray16.png")
    assert gray.shape == (25, 20) and gray.dtype == np.uint16
    assert stdout.count("estimated noise sigma") == 2
    # Given the noise level, nothing is estimated.
    assert cli.main(["deblur", "--workdir", str(nonblind_run), "--input", str(photos / "rgb.png"),
                        "--output", str(tmp_path / "out2"), "--kernel", str(tmp_path / "k.npy"),
                        "--noise-sigma", "0.02"]) == 0
    assert "estimated" not in capsys.readouterr().out

    iio.imwrite(tmp_path / "big.png", np.full((40, 40), 255, np.uint8))  # larger than gray16.png (25x20)
    np.save(tmp_path / "negative.npy", -kernel)
    cases = {
        "no kernel": ([], ["non-blind", "--kernel FILE"]),
        "negative": (["--kernel", tmp_path / "negative.npy"], ["negative.npy", "negative values"]),
        "too large": (["--kernel", tmp_path / "big.png"], ["gray16.png", "smaller than the kernel (40x40)"]),
        "missing": (["--kernel", tmp_path / "nope.npy"], ["nope.npy", "no such file"]),
        "bad sigma": (["--kernel", tmp_path / "k.npy", "--noise-sigma", "3"], ["--noise-sigma 3", "[0, 1)"]),
    }
    for name, (extra, fragments) in cases.items():
        out = tmp_path / f"bad_{name.replace(' ', '_')}"
        line = usage_error_in_process(capsys, "deblur", "--workdir", nonblind_run, "--input", photos, "--output", out, *extra)
        assert all(str(f) in line for f in fragments), (name, line)
        assert not out.exists(), name


def test_kernel_files_are_read_normalised_and_checked(tmp_path, rng):
    kernel = rng.random((7, 5))
    np.save(tmp_path / "k.npy", kernel)
    np.testing.assert_allclose(kernel_files.read_kernel(tmp_path / "k.npy"), kernel / kernel.sum(), rtol=1e-6)
    image = rng.integers(0, 65536, (9, 9), dtype=np.uint16)
    iio.imwrite(tmp_path / "k16.png", image)
    np.testing.assert_allclose(kernel_files.read_kernel(tmp_path / "k16.png"), image / image.sum(), rtol=1e-6)
    gray_as_rgb = np.repeat(rng.integers(0, 256, (5, 5, 1), dtype=np.uint8), 3, axis=-1)
    iio.imwrite(tmp_path / "rgb.png", gray_as_rgb)
    assert kernel_files.read_kernel(tmp_path / "rgb.png").shape == (5, 5)
    iio.imwrite(tmp_path / "colour.png", rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.save(tmp_path / "zeros.npy", np.zeros((3, 3)))
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    np.save(tmp_path / "cube.npy", np.ones((3, 3, 2)))
    (tmp_path / "text.png").write_text("not an image")
    for name, fragment in [("colour.png", "colour kernel"), ("empty.npy", "empty"), ("zeros.npy", "all zeros"),
                           ("nan.npy", "NaN"), ("cube.npy", "2-D kernel"), ("text.png", "cannot read")]:
        with pytest.raises(kernel_files.UserError, match=fragment):
            kernel_files.read_kernel(tmp_path / name)


@pytest.mark.slow
def test_eval_with_more_stages_and_a_refused_override(nonblind_run, capsys):
    """More stages keep the parameters (the prior is shared): scored, written under its own name."""
    assert cli.main(["eval", "--workdir", str(nonblind_run), "--config.model.kwargs={'stages': 3}"]) == 0
    out = capsys.readouterr().out
    assert "with --config.model.kwargs={'stages': 3}" in out and "| model (true kernel) |" in out
    assert list(nonblind_run.glob("eval_test_default_*stages*.md"))
    line = usage_error_in_process(capsys, "eval", "--workdir", nonblind_run, "--config.model.kwargs={'prior_width': 16}")
    assert "changes the shapes of the parameters" in line
