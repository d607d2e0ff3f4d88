"""Random trajectories: against a float64 numpy DeblurGAN-style generator, a numpy bilinear
splat, and the Matérn covariance evaluated with scipy's Bessel function."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jdeblur.physics import trajectories

SIZE = 31
BATCH = 300  # one batch shape for every call of shake_paths, so it compiles once
# Each jitted generator compiles a threefry (seconds on a busy CPU): the tests share these few.
shake_paths = jax.jit(jax.vmap(lambda k, anxiety: trajectories.camera_shake_trajectory(k, 256, anxiety=anxiety)))
shake_kernels = jax.jit(jax.vmap(
    lambda k, exposure: trajectories.camera_shake_kernel(k, SIZE, exposure=exposure, num_samples=256)))
gp_kernels = jax.jit(jax.vmap(lambda k, exposure: trajectories.gp_motion_kernel(k, SIZE)))


def batch_of_keys(seed):
    """BATCH keys; always this shape, so the eager split compiles its threefry only once."""
    return jax.random.split(jax.random.key(seed), BATCH)


def numpy_shake_paths(rng, batch, *, iters=2000, max_len=60.0, expl=0.005):
    """Boracchi & Foi's loop as DeblurGAN's ``Trajectory.fit`` runs it, float64, batched."""
    centripetal = 0.7 * rng.uniform(size=batch)
    prob_big_shake = 0.2 * rng.uniform(size=batch)
    gaussian_shake = 10 * rng.uniform(size=batch)
    step = max_len / (iters - 1)
    v = np.exp(2j * np.pi * rng.uniform(size=batch)) * expl
    x = np.zeros((iters, batch), complex)
    for t in range(iters - 1):
        big = rng.uniform(size=batch) < prob_big_shake * expl
        turn = np.where(big, 2 * v * np.exp(1j * (np.pi + rng.uniform(size=batch) - 0.5)), 0)
        noise = rng.normal(size=batch) + 1j * rng.normal(size=batch)
        v = v + turn + expl * (gaussian_shake * noise - centripetal * x[t]) * step
        v = v / np.abs(v) * step
        x[t + 1] = x[t] + v
    return np.stack([x.real, x.imag], -1).transpose(1, 0, 2)


def path_statistics(paths, length):
    """Mean end-to-end distance and mean bounding-box side, relative to the path length."""
    end_to_end = np.linalg.norm(paths[:, -1] - paths[:, 0], axis=-1) / length
    extent = (paths.max(1) - paths.min(1)).max(-1) / length
    return np.array([end_to_end.mean(), extent.mean()])


def test_camera_shake_statistics_match_the_2000_sample_reference_generator(rng):
    reference = path_statistics(numpy_shake_paths(rng, BATCH), 60.0)
    # 256 samples, the rates rescaled from the reference's 2000 (the mixture's default).
    paths = np.asarray(shake_paths(batch_of_keys(int(rng.integers(2**31))), jnp.full(BATCH, 0.005, jnp.float32)))
    # Every step has the same length, so every path is exactly max_length long.
    np.testing.assert_allclose(np.linalg.norm(np.diff(paths, axis=1), axis=-1).sum(1), 60.0, rtol=1e-4)
    # Means over BATCH = 300 paths: standard errors ~0.008 (end-to-end) and ~0.01 (extent); a
    # tolerance of 0.05 is ~4 standard errors of the difference.
    np.testing.assert_allclose(path_statistics(paths, 60.0), reference, atol=0.05)


def test_camera_shake_without_anxiety_is_a_straight_line():
    paths = np.asarray(shake_paths(batch_of_keys(3), jnp.zeros(BATCH, jnp.float32)))
    np.testing.assert_allclose(np.linalg.norm(paths[:, -1] - paths[:, 0], axis=-1), 60.0, rtol=1e-5)


def numpy_splat(points, size, weights):
    """DeblurGAN's PSF rasterisation (triangle function on the 4 neighbours), after centring and fitting."""
    points = points - (weights[:, None] * points).sum(0) / weights.sum()
    extent = np.abs(points[weights > 0]).max()
    radius = (size - 1) // 2
    if extent > radius:
        points = points * radius / extent
    out = np.zeros((size, size))
    for (x, y), w in zip(points + size // 2, weights):
        for col in (int(np.floor(x)), int(np.floor(x)) + 1):
            for row in (int(np.floor(y)), int(np.floor(y)) + 1):
                if 0 <= row < size and 0 <= col < size:
                    out[row, col] += w * max(0, 1 - abs(x - col)) * max(0, 1 - abs(y - row))
    return out / out.sum()


def test_rasterize_trajectory_equals_numpy_splat_and_keeps_the_centre_of_mass(rng):
    small = rng.normal(size=(200, 2)) * 2 + 40.0  # far from the origin: it must be re-centred
    large = np.cumsum(rng.normal(size=(200, 2)), axis=0) * 3  # too wide: it must be shrunk
    weights = np.clip(rng.uniform(-0.5, 1.5, 200), 0, 1)
    raster = jax.jit(trajectories.rasterize_trajectory, static_argnums=1)
    for points in (small, large):
        got = np.asarray(raster(jnp.asarray(points, jnp.float32), 15, weights=jnp.asarray(weights, jnp.float32)))
        np.testing.assert_allclose(got, numpy_splat(points, 15, weights), atol=2e-6)
        y, x = np.mgrid[:15, :15] - 7
        np.testing.assert_allclose([(got * x).sum(), (got * y).sum()], 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="points"):
        trajectories.rasterize_trajectory(jnp.zeros((5, 3)), 15)
    with pytest.raises(ValueError, match="weights"):
        trajectories.rasterize_trajectory(jnp.zeros((5, 2)), 15, weights=-jnp.ones(5))


@pytest.mark.parametrize("family", ["camera_shake", "gp_motion"])
def test_random_kernels_are_normalised_centred_reproducible_and_vmappable(family):
    make = {"camera_shake": shake_kernels, "gp_motion": gp_kernels}[family]
    keys = batch_of_keys(7)[:8]
    batch = np.asarray(make(keys, jnp.ones(8, jnp.float32)))
    assert batch.shape == (8, SIZE, SIZE) and batch.dtype == np.float32
    assert batch.min() >= 0
    np.testing.assert_allclose(batch.sum((1, 2)), 1.0, rtol=1e-5)
    # Bilinear splatting keeps the points' centre of mass, which is put on the centre pixel;
    # float32 sums over 961 pixels leave ~1e-5 px.
    offsets = np.arange(SIZE) - SIZE // 2
    np.testing.assert_allclose((batch.sum(1) * offsets).sum(-1), 0.0, atol=1e-3)
    np.testing.assert_allclose((batch.sum(2) * offsets).sum(-1), 0.0, atol=1e-3)
    # Each kernel depends on its own key only (same key, same kernel, wherever in the batch);
    # another key gives another kernel; and they are blurs, not deltas.
    np.testing.assert_allclose(make(keys[::-1], jnp.ones(8, jnp.float32)), batch[::-1], atol=1e-6)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3
    assert (batch.max((1, 2)) < 0.5).all()


def test_exposure_keeps_the_first_part_of_the_path():
    np.testing.assert_allclose(trajectories.exposure_weights(11, 1.0), np.ones(11))
    np.testing.assert_allclose(trajectories.exposure_weights(11, 0.55), [1] * 6 + [0.5] + [0] * 4, atol=1e-6)
    np.testing.assert_allclose(trajectories.exposure_weights(11, 0.0), [1] + [0] * 10)
    keys = batch_of_keys(11)
    path = shake_paths(keys, jnp.full(BATCH, 0.005, jnp.float32))[0]  # camera_shake_kernel's default anxiety
    half = shake_kernels(keys[:8], jnp.full(8, 0.5, jnp.float32))[0]
    # Half of 255 steps: samples 0..127 whole, half of sample 128; the canvas (64) maps onto SIZE.
    weights = np.r_[np.ones(128), 0.5, np.zeros(127)]
    path = np.asarray(path, np.float64)
    np.testing.assert_allclose(half, numpy_splat(path * SIZE / 64, SIZE, weights), atol=2e-6)
    # Without a canvas the path is in kernel pixels already.
    native = jax.jit(lambda p: trajectories.rasterize_camera_shake(p, SIZE, canvas=None, exposure=0.5))(path)
    np.testing.assert_allclose(native, numpy_splat(path, SIZE, weights), atol=2e-6)


def matern_scipy(distance, length_scale, nu):
    """General Matérn correlation 2^(1-nu) / Gamma(nu) (sqrt(2 nu) d / l)^nu K_nu(sqrt(2 nu) d / l)."""
    scaled = np.sqrt(2 * nu) * np.maximum(distance, 1e-12) / length_scale
    return 2 ** (1 - nu) / special.gamma(nu) * scaled**nu * special.kv(nu, scaled)


def test_gp_paths_have_the_matern_covariance():
    d = np.linspace(0.0, 2.0, 41)
    for smoothness in (1.5, 2.5):
        np.testing.assert_allclose(trajectories.matern_covariance(d, length_scale=0.3, nu=smoothness),
                                   matern_scipy(d, 0.3, smoothness), rtol=1e-6, atol=1e-12)
    # Sampling is the same code for either nu (a square root of the covariance matrix).
    n, draws, sigma, nu = 16, 2000, 0.25, 1.5
    keys = jnp.concatenate([batch_of_keys(seed) for seed in range(-(-draws // BATCH))])[:draws]
    paths = jax.jit(jax.vmap(lambda k: trajectories.gp_trajectory(k, n, sigma=sigma, nu=nu)))(keys)
    samples = np.asarray(paths, np.float64).transpose(0, 2, 1).reshape(2 * draws, n)  # x and y alike
    empirical = samples.T @ samples / len(samples)
    t = np.linspace(0.0, 1.0, n)
    expected = sigma**2 * matern_scipy(np.abs(t[:, None] - t[None, :]), 0.3, nu)
    # 4000 zero-mean samples: each entry's standard error is at most sigma^2 sqrt(2 / 4000).
    np.testing.assert_allclose(empirical, expected, atol=5 * sigma**2 * np.sqrt(2 / 4000))


def test_bad_arguments_raise_naming_them():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_samples"):
        trajectories.camera_shake_trajectory(key, 1)
    with pytest.raises(ValueError, match="anxiety"):
        trajectories.camera_shake_trajectory(key, 16, anxiety=-0.1)
    with pytest.raises(ValueError, match="nu"):
        trajectories.gp_trajectory(key, 16, nu=0.5)
    with pytest.raises(ValueError, match="size"):
        trajectories.gp_motion_kernel(key, 0)
