"""The kernel mixture: family frequencies, parameters from the config, the contract, bad configs."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jdeblur import config as config_lib
from jdeblur.physics import kernel_mixture, kernels

DRAWS = 2000


def test_default_config_is_valid_plain_and_overridable():
    cfg = kernel_mixture.default_blur_config()
    kernel_mixture.validate_blur_config(cfg)
    assert cfg.families == kernel_mixture.FAMILIES and len(cfg.weights) == len(cfg.families)
    for name, value in config_lib.to_overrides(cfg).items():
        assert value is None or isinstance(value, (int, float, bool, str, tuple)), name
    cfg.lock()
    config_lib.apply_overrides(cfg, ["gaussian.sigma=(1.0, 2.0)", "size=27", "camera_shake.canvas=64"])
    assert cfg.gaussian.sigma == (1.0, 2.0) and cfg.size == 27 and cfg.camera_shake.canvas == 64
    kernel_mixture.validate_blur_config(cfg)
    with pytest.raises(config_lib.ConfigError, match="gausian"):
        config_lib.apply_overrides(cfg, ["gausian.sigma=(1.0, 2.0)"])


def test_default_mixture_draws_families_by_weight_and_valid_kernels():
    cfg = kernel_mixture.default_blur_config()
    batched = jax.jit(jax.vmap(lambda k: kernel_mixture.sample_kernel(k, cfg)))
    keys = jax.random.split(jax.random.key(2024), DRAWS)
    # The first 48 keys again, reversed, at the end of the same call: each kernel must follow
    # its own key wherever it sits in the batch.
    all_kernels, all_ids = batched(jnp.concatenate([keys, keys[:48][::-1]]))
    assert all_kernels.shape == (DRAWS + 48, cfg.size, cfg.size) and all_kernels.dtype == jnp.float32
    assert all_ids.dtype == jnp.int32
    batch, family_ids = np.asarray(all_kernels[:DRAWS]), np.asarray(all_ids[:DRAWS])
    np.testing.assert_array_equal(all_ids[DRAWS:], family_ids[:48][::-1])
    np.testing.assert_allclose(all_kernels[DRAWS:], batch[:48][::-1], atol=1e-6)
    # Chi-square against the weights, 5 degrees of freedom: 25 is the 0.99986 quantile (the
    # keys are fixed, so this either always passes or reveals a biased draw).
    counts = np.bincount(family_ids, minlength=len(kernel_mixture.FAMILIES))
    expected = DRAWS * np.asarray(cfg.weights) / np.sum(cfg.weights)
    assert np.sum((counts - expected) ** 2 / expected) < 25.0, counts
    assert batch.min() >= 0
    np.testing.assert_allclose(batch.sum((1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(kernels.kernel_centroid)(batch), 0.0, atol=1e-3)
    # Kernels match their family ids: boxes are separable (rank 1), disks symmetric.
    is_box = family_ids == kernel_mixture.FAMILIES.index("box")
    singular = np.linalg.svd(batch[is_box], compute_uv=False)
    assert (singular[:, 1] < 1e-5 * singular[:, 0]).all()
    is_disk = family_ids == kernel_mixture.FAMILIES.index("disk")
    np.testing.assert_allclose(batch[is_disk], batch[is_disk].transpose(0, 2, 1), atol=1e-6)


def test_parameters_come_from_the_config_ranges():
    cfg = kernel_mixture.default_blur_config()
    cfg.size = 15
    cfg.families = ("gaussian", "disk", "box", "linear_motion")
    cfg.weights = (1.0, 1.0, 0.0, 2.0)  # a zero weight: never drawn
    cfg.gaussian.sigma, cfg.gaussian.anisotropic = (1.5, 1.5), False
    cfg.disk.radius = (2.0, 2.0)
    cfg.linear_motion.length, cfg.linear_motion.angle = (7.0, 7.0), (30.0, 30.0)

    @jax.jit
    def draw_and_expect(key):
        # The expected kernels are computed in the same jitted call: one compile for the test.
        expected = {"gaussian": kernels.gaussian_kernel(15, sigma=1.5), "disk": kernels.disk_kernel(15, radius=2.0),
                    "linear_motion": kernels.linear_motion_kernel(15, length=7.0, angle=30.0)}
        return kernel_mixture.sample_kernels(key, 40, cfg), expected

    (batch, family_ids), expected = draw_and_expect(jax.random.key(5))
    assert batch.shape == (40, 15, 15) and family_ids.shape == (40,)
    names = [kernel_mixture.FAMILIES[i] for i in np.asarray(family_ids)]
    assert "box" not in names and set(names) == set(expected)
    for name, kernel in zip(names, batch):
        np.testing.assert_allclose(kernel, expected[name], atol=1e-6)


def _modified(**changes):
    """The default config with ``a__b=value`` changes (None deletes), bypassing type safety."""
    cfg = kernel_mixture.default_blur_config().to_dict()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = cfg
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return ml_collections.ConfigDict(cfg)


@pytest.mark.parametrize("changes, match", [
    ({"families": ("gaussian", "motion")}, r"families: expected one of .*'linear_motion'.*got 'motion'"),
    ({"families": ("gaussian", "gaussian"), "weights": (1.0, 1.0)}, "families: expected distinct"),
    ({"families": ()}, "families"),
    ({"weights": (1.0, 2.0)}, "weights: expected 6 weights"),
    ({"weights": (1.0, -1.0, 1.0, 1.0, 1.0, 1.0)}, "weights"),
    ({"weights": (0.0,) * 6}, "weights"),
    ({"size": 2}, "size: expected an int >= 3"),
    ({"size": 31.0}, "size"),
    ({"gaussian__sigma": (-1.0, 2.0)}, r"gaussian.sigma: expected a range of values >= 0"),
    ({"disk__radius": (3.0, 1.0)}, r"disk.radius: expected low <= high"),
    ({"disk__radius": (1.0, 20.0)}, r"disk.radius: expected high <= 15.5"),
    ({"linear_motion__length": (3.0, 40.0)}, r"linear_motion.length: expected high <= 31"),
    ({"box__width": 3.0}, r"box.width: expected a range"),
    ({"camera_shake__exposure": (0.5, 2.0)}, r"camera_shake.exposure"),
    ({"camera_shake__num_samples": 1}, r"camera_shake.num_samples"),
    ({"gp_motion__nu": 0.5}, r"gp_motion.nu"),
    ({"gp_motion__length_scale": 0.0}, r"gp_motion.length_scale"),
    ({"gp_motion": None}, r"gp_motion: the config has no sub-dict"),
])
def test_bad_configs_raise_naming_the_field(changes, match):
    cfg = _modified(**changes)
    with pytest.raises(ValueError, match=match):
        kernel_mixture.validate_blur_config(cfg)
    with pytest.raises(ValueError, match=match):
        kernel_mixture.sample_kernel(jax.random.key(0), cfg)


def test_angles_may_be_negative_and_unused_families_are_not_checked():
    cfg = _modified(linear_motion__angle=(-90.0, 90.0), families=("linear_motion",), weights=(1.0,),
                    gp_motion__nu=0.5)
    kernel_mixture.validate_blur_config(cfg)
    with pytest.raises(ValueError, match="n: expected"):
        kernel_mixture.sample_kernels(jax.random.key(0), 0, cfg)
