"""``jdeblur.load(workdir).deblur(image)``: the model's own output on the padded image, for arrays and
paths alike, the observations a blind or non-blind model needs, and the README's example run as written.

The ``deblur_files`` loop (the ``deblur`` command) is tested in tests/test_photos.py and through
the launcher in tests/test_launch.py and tests/test_nonblind_cli.py.
"""
import re

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdeblur
from jdeblur import config as cfglib
from jdeblur import photos
from jdeblur.config import REPO
from jdeblur.errors import UserError
from jdeblur.models.registry import build_model
from tests.models.model_fixtures import quick_jit


@pytest.fixture
def workdir(untrained_run):
    return untrained_run


@pytest.mark.slow
def test_deblur_is_the_model_on_the_reflect_padded_image_for_arrays_and_paths(workdir, rng, tmp_path, capfd):
    model = jdeblur.load(workdir)
    assert "read only" not in capfd.readouterr().err  # orbax's notice about its own read-only reader
    assert not model.nonblind and model.step == 1
    image = rng.random((37, 45, 3), dtype=np.float32)
    padded = np.pad(image, ((0, 128 - 37), (0, 128 - 45), (0, 0)), mode="reflect")  # photos.COMPILE_MULTIPLE
    expected = np.clip(np.asarray(model.model.apply({"params": model.params}, padded[None]))[0, :37, :45], 0, 1)
    np.testing.assert_allclose(model.deblur(image), expected, atol=2e-6)
    photo = (image * 255).round().astype(np.uint8)
    iio.imwrite(tmp_path / "photo.png", photo)
    from_path = model.deblur(tmp_path / "photo.png")
    assert from_path.dtype == np.uint8 and from_path.shape == photo.shape
    np.testing.assert_array_equal(from_path, model.deblur(str(tmp_path / "photo.png")))
    np.testing.assert_array_equal(from_path, model.deblur(photo))


def test_deblur_refuses_a_kernel_for_a_blind_model_and_names_bad_arguments(workdir):
    model = jdeblur.load(workdir)
    with pytest.raises(UserError, match=r"^kernel=: the model of .* \(unet\) is blind"):
        model.deblur(np.zeros((8, 8, 3), np.float32), kernel=np.ones((3, 3)))
    with pytest.raises(UserError, match="--tile 200: a 200x200 tile is over the budget"):
        model.deblur(np.zeros((8, 8, 3), np.float32), tile=200, max_pixels=100 * 100)
    with pytest.raises(UserError, match="no config.json"):
        jdeblur.load(workdir / "checkpoints")


def test_a_nonblind_model_needs_the_kernel_and_checks_it():
    # Every check comes before the model runs: no parameters needed.
    config = cfglib.load_config("experiments/nonblind.py:runlocal")
    model = jdeblur.Deblurrer("nb", config, build_model(config.model), params={}, step=0)
    image = np.zeros((20, 20), np.uint16)
    assert model.nonblind
    with pytest.raises(UserError, match="is non-blind; give the blur with kernel="):
        model.deblur(image)
    with pytest.raises(UserError, match=r"^kernel: the kernel has negative values"):
        model.deblur(image, kernel=-np.ones((3, 3)))
    with pytest.raises(UserError, match=r"^image: the image \(20x20\) is smaller than the kernel \(21x21\)"):
        model.deblur(image, kernel=np.ones((21, 21)))
    with pytest.raises(UserError, match="noise_sigma 2.0: expected a standard deviation in"):
        model.deblur(image, kernel=np.ones((3, 3)), noise_sigma=2.0)
    with pytest.raises(UserError, match="ensemble: the self-ensemble rotates the image but not its kernel"):
        model.deblur(image, kernel=np.ones((3, 3)), ensemble=True)


def readme_example() -> str:
    """The README's Python block that calls ``jdeblur.load``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    [block] = [b for b in blocks if "jdeblur.load(" in b]
    return block


@pytest.mark.slow
def test_the_readme_example_runs_as_written(workdir, rng, tmp_path, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 6, code
    photo = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "photo.png", photo)
    names = {}
    exec(code.replace('"runs/qs"', repr(str(workdir))).replace('"photo.png"', repr(str(tmp_path / "photo.png"))),
         names)
    assert names["restored"].shape == photo.shape and names["restored"].dtype == np.uint8
    assert 0 < float(capsys.readouterr().out) < 100  # the PSNR it prints


def test_a_two_stage_blind_model_takes_a_known_kernel_instead_of_searching(rng):
    """Given the kernel, the blind two-stage model is its non-blind part: the same restoration as
    the model applied with that kernel and noise level to the padded image."""
    config = cfglib.load_config("experiments/blind.py:runlocal")
    module = build_model(config.model)
    image = rng.random((24, 20, 3)).astype(np.float32)
    kernel = np.zeros((5, 5), np.float32)
    kernel[2, 1:4] = 1.0 / 3.0
    padded = jnp.asarray(photos.pad_to_multiple(image, photos.COMPILE_MULTIPLE))[None]  # as deblur pads
    params = quick_jit(module.init)(jax.random.key(0), padded, jnp.asarray(kernel), 0.02)["params"]
    model = jdeblur.Deblurrer("ts", config, module, params=params, step=0)
    assert not model.nonblind and model.takes_kernel
    restored = model.deblur(image, kernel=kernel, noise_sigma=0.02)
    expected = quick_jit(module.apply)({"params": params}, padded, jnp.asarray(kernel), 0.02)[0, :24, :20]
    np.testing.assert_allclose(restored, np.clip(expected, 0, 1), atol=1e-5)
    with pytest.raises(UserError, match="ensemble: the self-ensemble rotates the image but not its kernel"):
        model.deblur(image, kernel=kernel, ensemble=True)
