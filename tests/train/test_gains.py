"""The noise-by-family grid: cells share kernels across noise levels; checks; the gains table."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdeblur.errors import UserError
from jdeblur.physics.degrade import degrade_with_info
from jdeblur.train import gains
from jdeblur.train.defaults import base_config


def grid_config():
    c = base_config()
    c.degrade.blur.size = 9
    c.degrade.blur.families, c.degrade.blur.weights = ("gaussian", "linear_motion"), (1.0, 1.0)
    c.degrade.blur.linear_motion.length = (3.0, 8.0)
    c.degrade.blur.disk.radius = (1.0, 4.0)
    c.degrade.boundary = "reflect"
    c.degrade.noise.sigma = (0.01, 0.05)
    c.eval.noise_levels = (0.0, 0.01)
    c.eval.out_of_family = ("disk",)
    return c


def test_cells_at_every_noise_level_share_the_kernel_and_differ_by_the_noise_alone(rng):
    config = grid_config()
    x = jnp.asarray(rng.random((1, 16, 16, 3)), jnp.float32)
    key = jax.random.key(7)
    cells = {label: degrade_with_info(key, x, gains.cell_degrade_config(config, label, "disk"))
             for label in gains.labels(config)}
    assert list(cells) == ["0", "0.01", "range"]
    for cell in cells.values():
        np.testing.assert_array_equal(cell.kernel, cells["0"].kernel)
        assert int(cell.family[0]) == 1  # disk
    assert float(cells["0"].noise_sigma[0]) == 0 and float(cells["0.01"].noise_sigma[0]) == pytest.approx(0.01)
    assert 0.01 <= float(cells["range"].noise_sigma[0]) <= 0.05
    noise = np.asarray(cells["0.01"].y - cells["0"].y)
    assert abs(noise.std() - 0.01) < 0.002  # the clean blur is the same: the difference is the noise


@pytest.mark.parametrize("field, value, message", [
    ("out_of_family", ("linear_motion",), "is one of the families training draws from"),
    ("out_of_family", ("blob",), "config.eval.out_of_family"),
    ("noise_levels", (1.5,), "expected noise standard deviations in [0, 1)"),
])
def test_bad_grids_are_refused_naming_the_field(field, value, message):
    config = grid_config()
    config.eval[field] = value
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        gains.check_eval_grid(config)
    config = grid_config()
    config.degrade.blur.disk.radius = (1.0, 6.0)  # does not fit a 9-px kernel
    with pytest.raises(UserError, match=r"out_of_family 'disk': config.degrade.blur.disk.radius"):
        gains.check_eval_grid(config)


def test_gains_table_rows_and_cells():
    config = grid_config()

    def table(blurred, model, wiener):
        return {"blurred": {"psnr": blurred, "ssim": 0.5}, "model": {"psnr": model, "ssim": 0.7},
                "wiener": {"psnr": wiener, "ssim": 0.6}}

    entry = {"families": {"gaussian": table(25, 28, 27), "linear_motion": table(24, 29, 26), "disk": table(26, 27, 27.5)},
             "in_family": table(24.5, 28.5, 26.5), "out_of_family": table(26, 27, 27.5)}
    text = gains.format_gains({"0": entry, "0.01": entry, "range": entry}, config, convention="default",
                              title="split test")
    lines = text.splitlines()
    assert "| blur family | sigma 0: model / Wiener | sigma 1%: model / Wiener | sigma 1-5%: model / Wiener |" in lines[2]
    assert "| linear_motion | +5.00 / +2.00 | +5.00 / +2.00 | +5.00 / +2.00 | 24.00 / 24.00 / 24.00 |" in lines
    assert "| **all in-family** | +4.00 / +2.00 |" in text and "| disk (out of family) | +1.00 / +1.50 |" in text
    assert "(metric convention: default)" in lines[0]
