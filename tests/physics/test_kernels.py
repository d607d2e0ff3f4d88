"""Parametric kernels against float64 references written independently here (scipy, brute force)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr

from jdeblur.physics import kernels

SIZE = 15
# Jitted once per module (size static, parameters traced), so the tests compile each kernel a
# few times rather than op by op in eager mode.
gaussian = jax.jit(kernels.gaussian_kernel, static_argnums=0)
disk = jax.jit(kernels.disk_kernel, static_argnums=0)
box = jax.jit(kernels.box_kernel, static_argnums=0)
linear_motion = jax.jit(kernels.linear_motion_kernel, static_argnums=0)


def f32(*values):
    return jnp.asarray(values if len(values) > 1 else values[0], jnp.float32)


def numpy_centroid(kernel):
    """Centre of mass (x, y) as offsets from pixel (size // 2, size // 2), float64."""
    kernel = np.asarray(kernel, np.float64)
    offsets_y = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
    offsets_x = np.arange(kernel.shape[1]) - kernel.shape[1] // 2
    return np.array([(kernel.sum(0) * offsets_x).sum(), (kernel.sum(1) * offsets_y).sum()]) / kernel.sum()


def numpy_covariance(kernel):
    kernel = np.asarray(kernel, np.float64)
    y, x = np.mgrid[: kernel.shape[0], : kernel.shape[1]].astype(np.float64)
    x, y = x - numpy_centroid(kernel)[0] - kernel.shape[1] // 2, y - numpy_centroid(kernel)[1] - kernel.shape[0] // 2
    w = kernel / kernel.sum()
    return np.array([[(w * x * x).sum(), (w * x * y).sum()], [(w * x * y).sum(), (w * y * y).sum()]])


def direction(angle_deg):
    """Unit vector (x, y) in array axes (rows down) of a direction counter-clockwise as displayed."""
    theta = np.deg2rad(angle_deg)
    return np.array([np.cos(theta), -np.sin(theta)])


def supersampled(size, inside_or_density, samples):
    """Brute-force pixel integral: sum of a function over samples x samples midpoints per pixel."""
    offsets = np.arange(size) - size // 2
    sub = (np.arange(samples) + 0.5) / samples - 0.5
    coords = (offsets[:, None] + sub[None, :]).ravel()
    x, y = np.meshgrid(coords, coords)
    values = inside_or_density(x, y).astype(np.float64)
    return values.reshape(size, samples, size, samples).sum(axis=(1, 3))


def rotated_gaussian_reference(size, sigma_x, sigma_y, angle):
    d = direction(angle)
    n = np.array([-d[1], d[0]])
    precision = np.linalg.inv(sigma_x**2 * np.outer(d, d) + sigma_y**2 * np.outer(n, n))

    def density(x, y):
        return np.exp(-0.5 * (precision[0, 0] * x * x + 2 * precision[0, 1] * x * y + precision[1, 1] * y * y))

    # Midpoint rule with Richardson extrapolation (error h^2 -> h^4): ~1e-7 at 48/96 points.
    coarse, fine = supersampled(size, density, 48) / 48**2, supersampled(size, density, 96) / 96**2
    k = (4 * fine - coarse) / 3
    return k / k.sum()


# One batched call per family checks the common contract on varied parameters.
FAMILY_CASES = {
    "gaussian": (lambda p: kernels.gaussian_kernel(SIZE, sigma=p[:2], angle=p[2]),
                 [[0.3, 0.3, 0.0], [2.0, 0.5, 30.0], [1.0, 3.0, -75.0], [0.0, 0.0, 0.0]]),
    "disk": (lambda p: kernels.disk_kernel(SIZE, radius=p[0]), [[0.0], [0.4], [2.5], [7.5]]),
    "box": (lambda p: kernels.box_kernel(SIZE, width=p[0], height=p[1]), [[1.0, 1.0], [3.3, 6.0], [0.0, 15.0]]),
    "linear_motion": (lambda p: kernels.linear_motion_kernel(SIZE, length=p[0], angle=p[1]),
                      [[0.0, 0.0], [5.0, 0.0], [7.3, 33.0], [14.0, 90.0], [40.0, 123.0]]),
}


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
def test_kernels_are_normalised_centred_jittable_and_vmappable(family):
    make, params = FAMILY_CASES[family]
    params = jnp.asarray(params, jnp.float32)
    batch = jax.jit(jax.vmap(make))(params)
    assert batch.shape == (len(params), SIZE, SIZE) and batch.dtype == jnp.float32
    for kernel in np.asarray(batch):
        assert kernel.min() >= 0.0
        np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-5)
        # Symmetric families are point-symmetric about the centre pixel, so the centre of mass
        # is there up to float32 rounding of the sums (~1e-7 relative to offsets of <= 7 px).
        np.testing.assert_allclose(numpy_centroid(kernel), 0.0, atol=1e-4)
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-6)
    # The unbatched call gives the same kernels.
    single = jax.jit(make)
    np.testing.assert_allclose(np.stack([single(p) for p in params]), batch, atol=1e-6)


def test_isotropic_and_axis_aligned_gaussians_equal_the_exact_pixel_integral(rng):
    edges = np.arange(SIZE + 1) - SIZE // 2 - 0.5
    for sigma_x, sigma_y in [(0.3, 0.3), tuple(rng.uniform(0.4, 3.0, 2))]:
        # Pixel integral of a separable Gaussian: products of normal-CDF differences.
        ref = np.outer(np.diff(ndtr(edges / sigma_y)), np.diff(ndtr(edges / sigma_x)))
        ref /= ref.sum()
        got = gaussian(SIZE, sigma=f32(sigma_x, sigma_y), angle=f32(0.0))
        np.testing.assert_allclose(got, ref, atol=2e-7)
    # sigma 0.3 keeps 18% of its mass off the centre pixel instead of collapsing to a delta.
    small = np.asarray(gaussian(SIZE, sigma=f32(0.3, 0.3), angle=f32(0.0)))
    assert 0.80 < small[SIZE // 2, SIZE // 2] < 0.83


def test_rotated_gaussian_equals_brute_force_pixel_integral(rng):
    for _ in range(3):
        sigma_x, sigma_y = rng.uniform(0.5, 3.0, 2)
        angle = rng.uniform(-180, 180)
        ref = rotated_gaussian_reference(SIZE, sigma_x, sigma_y, angle)
        got = gaussian(SIZE, sigma=f32(sigma_x, sigma_y), angle=f32(angle))
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_anisotropic_gaussian_covariance_matches_sigma_and_angle(rng):
    sigma_x, sigma_y = rng.uniform(0.8, 2.0, 2)
    angle = rng.uniform(0, 180)
    d = direction(angle)
    n = np.array([-d[1], d[0]])
    # Integrating over the unit pixel adds the box's variance 1/12 on each axis; the window's
    # truncation at 7.5 px (>= 3 sigma) lowers the variances by < 0.5%.
    expected = sigma_x**2 * np.outer(d, d) + sigma_y**2 * np.outer(n, n) + np.eye(2) / 12
    got = numpy_covariance(gaussian(SIZE, sigma=f32(sigma_x, sigma_y), angle=f32(angle)))
    np.testing.assert_allclose(got, expected, atol=0.005 * max(sigma_x, sigma_y) ** 2)


def disk_reference(size, radius):
    """Area of each pixel inside the disk, by adaptive quadrature of the chord length over x."""
    edges = np.arange(size + 1) - size // 2 - 0.5
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y0, y1 = edges[i], edges[i + 1]

            def chord(x):
                h = np.sqrt(max(radius**2 - x * x, 0.0))
                return max(0.0, min(y1, h) - max(y0, -h))

            lo, hi = max(edges[j], -radius), min(edges[j + 1], radius)
            if hi > lo:
                out[i, j] = integrate.quad(chord, lo, hi, epsabs=1e-12, limit=100)[0]
    return out


def test_disk_equals_quadrature_of_the_covered_area(rng):
    # 3.7 once lost 1e-4 to arcsin's slope at the tangent in float32; a random radius besides.
    for radius in (0.3, 3.7, rng.uniform(1.0, 6.0)):
        ref = disk_reference(SIZE, radius)
        np.testing.assert_allclose(ref.sum(), np.pi * radius**2, rtol=1e-7)
        got = disk(SIZE, radius=f32(radius))
        np.testing.assert_allclose(got, ref / ref.sum(), atol=5e-7)


def test_box_equals_supersampled_box(rng):
    width, height = rng.uniform(0.5, 12.0, 2)
    ref = supersampled(SIZE, lambda x, y: (np.abs(x) < width / 2) & (np.abs(y) < height / 2), 200)
    got = box(SIZE, width=f32(width), height=f32(height))
    # 200 sub-samples per pixel side resolve each edge to 1/200 of a pixel.
    np.testing.assert_allclose(got, ref / ref.sum(), atol=0.5 / 200 / (width * height) + 1e-7)
    classic = np.zeros((SIZE, SIZE))
    classic[5:10, 6:9] = 1 / 15
    np.testing.assert_allclose(box(SIZE, width=f32(3), height=f32(5)), classic, atol=1e-7)


def linear_motion_reference(size, length, angle, points=400_000):
    """Fraction of a densely sampled centred segment that falls in each pixel."""
    t = (np.arange(points) + 0.5) / points - 0.5
    xy = length * t[:, None] * direction(angle)[None, :]
    index = np.floor(xy + 0.5).astype(int) + size // 2
    out = np.zeros((size, size))
    np.add.at(out, (index[:, 1], index[:, 0]), 1.0 / points)
    return out


def test_linear_motion_equals_dense_segment_and_has_its_length_and_angle(rng):
    length, angle = rng.uniform(8.0, 14.0), rng.uniform(0, 180)
    got = np.asarray(linear_motion(SIZE, length=f32(length), angle=f32(angle)))
    # The reference bins 400k points: each pixel boundary crossing is off by <= 1 / 400k.
    np.testing.assert_allclose(got, linear_motion_reference(SIZE, length, angle), atol=2e-5)
    # A uniform segment of length L has variance L^2 / 12 along it and 0 across. Pixel centres
    # move each point by e, |e| <= 1/2 per axis, so the second moments move by O(L / sqrt(12))
    # at worst; measured, length and direction are within about 1 / L (px and rad).
    eigenvalues, eigenvectors = np.linalg.eigh(numpy_covariance(got))
    np.testing.assert_allclose(np.sqrt(12 * (eigenvalues[1] - eigenvalues[0])), length, atol=2.0 / length)
    assert abs(eigenvectors[:, 1] @ direction(angle)) > np.cos(1.0 / length)
    # The classic horizontal motion kernel of odd integer length.
    row = np.asarray(linear_motion(SIZE, length=f32(5.0), angle=f32(0.0)))[SIZE // 2]
    np.testing.assert_allclose(row, np.r_[np.zeros(5), np.full(5, 0.2), np.zeros(5)], atol=1e-7)


def test_too_long_motion_is_shortened_to_fit():
    kernel = np.asarray(linear_motion(SIZE, length=f32(100.0), angle=f32(45.0)))
    # Corner to corner: every diagonal pixel, equally (the segment ends at the window's corners).
    np.testing.assert_allclose(np.diag(kernel[::-1]), 1 / SIZE, atol=1e-6)


def test_even_sizes_centre_on_pixel_size_over_2_and_size_1_is_a_delta():
    size = 8
    for kernel in [gaussian(size, sigma=f32(1.0, 0.6), angle=f32(20.0)), disk(size, radius=f32(2.2)),
                   box(size, width=f32(2.5)), linear_motion(size, length=f32(5.0), angle=f32(60.0))]:
        assert kernel.shape == (size, size)
        np.testing.assert_allclose(float(jnp.sum(kernel)), 1.0, rtol=1e-6)
        # The symmetric part of the window holds the shape; only the Gaussian's tail reaches the
        # extra first row and column (mass ~2e-4 at offset -4), hence the tolerance.
        np.testing.assert_allclose(numpy_centroid(kernel), 0.0, atol=3e-3)
    np.testing.assert_array_equal(linear_motion(1, length=f32(5.0), angle=f32(30.0)), [[1.0]])


def test_kernel_centroid_matches_numpy(rng):
    kernel = rng.uniform(size=(2, 9, 7)).astype(np.float32)
    got = np.asarray(jax.jit(kernels.kernel_centroid)(kernel))
    np.testing.assert_allclose(got, np.stack([numpy_centroid(k) for k in kernel]), atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: kernels.gaussian_kernel(SIZE, sigma=-1.0), "sigma"),
    (lambda: kernels.gaussian_kernel(SIZE, sigma=(1.0, np.nan)), "sigma"),
    (lambda: kernels.disk_kernel(SIZE, radius=-0.5), "radius"),
    (lambda: kernels.box_kernel(SIZE, width=2.0, height=-1.0), "height"),
    (lambda: kernels.linear_motion_kernel(SIZE, length=-3.0), "length"),
    (lambda: kernels.disk_kernel(0, radius=1.0), "size"),
    (lambda: kernels.disk_kernel(15.0, radius=1.0), "size"),
])
def test_bad_arguments_raise_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()
