"""Blur operators against scipy in float64, the adjoint identity, linearity, shifts, jit, vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from jdeblur.physics.operators import BOUNDARIES, blur, blur_adjoint, crop_valid

_NDIMAGE_MODES = {"circular": "wrap", "reflect": "reflect", "zero": "constant"}
# (method, kernel shape, per-image kernels): odd, even and mixed sizes, shared and per-image
# kernels on both paths; the 9x8 kernel makes 'auto' take the FFT path.
_CASES = [
    ("spatial", (5, 3), False),
    ("spatial", (4, 6), True),
    ("fft", (5, 3), True),
    ("auto", (9, 8), False),
]


def _scipy_blur(x, k, boundary):
    """Reference: scipy per image and channel, float64; ``k`` is (kh, kw) or (B, kh, kw)."""
    kernels = np.broadcast_to(k, (x.shape[0],) + k.shape[-2:])
    out = []
    for image, kernel in zip(x, kernels):
        channels = []
        for c in range(x.shape[-1]):
            if boundary == "valid":
                channels.append(scipy.signal.convolve(image[..., c], kernel, mode="valid"))
            else:
                mode = _NDIMAGE_MODES[boundary]
                channels.append(scipy.ndimage.convolve(image[..., c], kernel, mode=mode))
        out.append(np.stack(channels, -1))
    return np.stack(out)


def _blur_and_adjoint(boundary, cases, x, kernels, ys):
    """H x and H^T y for every case, in one jitted function: one compilation per test."""

    def run(x, kernels, ys):
        return [
            (blur(x, k, boundary=boundary, method=method),
             blur_adjoint(y, k, boundary=boundary, method=method))
            for (method, _, _), k, y in zip(cases, kernels, ys)
        ]

    return jax.jit(run)(x, kernels, ys)


def _assert_dot_product_test(x, hx, y, hty, message):
    """<Hx, y> = <x, H^T y> to 1e-5 relative (all inputs positive, so no cancellation)."""
    assert hty.shape == x.shape, message
    lhs = np.vdot(np.asarray(hx, np.float64), np.asarray(y, np.float64))
    rhs = np.vdot(np.asarray(x, np.float64), np.asarray(hty, np.float64))
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs), (message, lhs, rhs)


def _random_kernels(rng, cases, batch, dtype):
    return [
        rng.random((batch,) + shape if per_image else shape).astype(dtype)
        for _, shape, per_image in cases
    ]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_blur_matches_scipy_and_its_adjoint_in_float64(boundary, rng, x64):
    x = rng.random((2, 13, 17, 3))
    kernels = _random_kernels(rng, _CASES, 2, np.float64)
    references = [_scipy_blur(x, k, boundary) for k in kernels]
    ys = [rng.random(reference.shape) for reference in references]
    results = _blur_and_adjoint(boundary, _CASES, x, kernels, ys)
    for case, reference, y, (hx, hty) in zip(_CASES, references, ys, results):
        assert hx.dtype == jnp.float64
        np.testing.assert_allclose(hx, reference, rtol=1e-12, atol=1e-12, err_msg=str(case))
        _assert_dot_product_test(x, hx, y, hty, case)


def test_single_image_float32_matches_scipy(rng):
    x = rng.random((15, 12, 3)).astype(np.float32)
    k = rng.random((7, 7)).astype(np.float32)
    k /= k.sum()
    y = blur(x, k, boundary="reflect")
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(y, _scipy_blur(x[None].astype(float), k, "reflect")[0], atol=2e-6)


def test_zero_boundary_is_scipy_signal_same_for_odd_kernels(rng, x64):
    x = rng.random((1, 11, 14, 1))
    k = rng.random((5, 3))
    expected = scipy.signal.convolve(x[0, ..., 0], k, mode="same")
    for method in ("spatial", "fft"):
        np.testing.assert_allclose(blur(x, k, boundary="zero", method=method)[0, ..., 0], expected)


def test_kernel_larger_than_image_matches_scipy_and_its_adjoint(rng, x64):
    # The reflected and wrapped borders are wider than the image: they repeat it.
    x = rng.random((1, 5, 6, 2))
    k = rng.random((9, 8))
    for boundary in ("circular", "reflect", "zero"):
        hx = blur(x, k, boundary=boundary, method="fft")
        np.testing.assert_allclose(hx, _scipy_blur(x, k, boundary), rtol=1e-12)
        y = rng.random(x.shape)
        hty = blur_adjoint(y, k, boundary=boundary, method="fft")
        _assert_dot_product_test(x, hx, y, hty, boundary)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adjoint_passes_the_dot_product_test_in_float32(boundary, rng):
    cases = [("spatial", (5, 4), True), ("fft", (5, 4), True)]
    x = rng.random((2, 12, 13, 2)).astype(np.float32)
    kernels = _random_kernels(rng, cases, 2, np.float32)
    out_shape = x.shape if boundary != "valid" else (2, 8, 10, 2)
    ys = [rng.random(out_shape).astype(np.float32) for _ in cases]
    results = _blur_and_adjoint(boundary, cases, x, kernels, ys)
    for case, y, (hx, hty) in zip(cases, ys, results):
        assert hx.dtype == jnp.float32 and hx.shape == out_shape
        _assert_dot_product_test(x, hx, y, hty, case)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_blur_is_linear_in_image_and_kernel(boundary, rng, x64):
    x1, x2 = rng.random((2, 2, 10, 11, 3))
    k1, k2 = rng.random((2, 2, 3, 4))
    a, b = rng.normal(size=2)
    mixed = blur(a * x1 + b * x2, k1, boundary=boundary)
    np.testing.assert_allclose(
        mixed, a * blur(x1, k1, boundary=boundary) + b * blur(x2, k1, boundary=boundary),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        blur(x1, a * k1 + b * k2, boundary=boundary),
        a * blur(x1, k1, boundary=boundary) + b * blur(x1, k2, boundary=boundary),
        atol=1e-12,
    )


def test_circular_blur_commutes_with_shifts(rng):
    x = rng.random((2, 12, 14, 3)).astype(np.float32)
    k = rng.random((2, 5, 6)).astype(np.float32)
    shift = tuple(rng.integers(-10, 10, size=2))
    for method in ("spatial", "fft"):
        shifted_first = blur(jnp.roll(x, shift, axis=(1, 2)), k, boundary="circular", method=method)
        shifted_after = jnp.roll(blur(x, k, boundary="circular", method=method), shift, axis=(1, 2))
        np.testing.assert_allclose(shifted_first, shifted_after, atol=1e-5)


def test_valid_blur_is_centred_on_crop_valid(rng):
    x = rng.random((2, 10, 12, 3)).astype(np.float32)
    for shape in [(5, 5), (4, 6), (3, 2)]:
        delta = np.zeros(shape, np.float32)
        delta[shape[0] // 2, shape[1] // 2] = 1
        valid = blur(x, delta, boundary="valid")
        assert valid.shape == (2, 10 - shape[0] + 1, 12 - shape[1] + 1, 3)
        np.testing.assert_allclose(valid, crop_valid(x, shape), atol=1e-6)
    # A margin-padded patch: the 'valid' blur has exactly the patch's size.
    patch = rng.random((16, 16, 3)).astype(np.float32)
    padded = np.pad(patch, ((7, 7), (7, 7), (0, 0)), mode="reflect")
    assert blur(padded, np.ones((15, 15)) / 225, boundary="valid").shape == patch.shape
    np.testing.assert_array_equal(crop_valid(padded, 15), patch)
    np.testing.assert_array_equal(jax.jit(crop_valid, static_argnums=1)(padded, 15), patch)
    np.testing.assert_array_equal(jax.vmap(lambda image: crop_valid(image, (4, 6)))(x),
                                  crop_valid(x, (4, 6)))


@pytest.mark.parametrize("boundary", ["reflect", "valid"])
def test_jit_and_vmap_agree_with_eager(boundary, rng):
    x = rng.random((3, 12, 12, 2)).astype(np.float32)
    k = rng.random((3, 3, 3)).astype(np.float32)
    eager = blur(x, k, boundary=boundary)
    jitted = jax.jit(blur, static_argnames=("boundary", "method"))(x, k, boundary=boundary)
    mapped = jax.vmap(lambda image, kernel: blur(image, kernel, boundary=boundary))(x, k)
    np.testing.assert_allclose(jitted, eager, atol=1e-6)
    np.testing.assert_allclose(mapped, eager, atol=1e-6)
    adjoint = blur_adjoint(eager, k, boundary=boundary)
    mapped_adjoint = jax.vmap(lambda y, kernel: blur_adjoint(y, kernel, boundary=boundary))(
        eager, k
    )
    np.testing.assert_allclose(mapped_adjoint, adjoint, atol=1e-6)


@pytest.mark.parametrize(
    "x_shape, k_shape, kwargs, match",
    [
        ((8, 8), (3, 3), {}, "x: expected"),
        ((1, 2, 8, 8, 3), (3, 3), {}, "x: expected"),
        ((8, 8, 3), (3,), {}, "k: expected"),
        ((2, 8, 8, 3), (3, 3, 3), {}, "k: per-image kernels"),
        ((8, 8, 3), (1, 3, 3), {}, "k: per-image kernels"),
        ((2, 8, 8, 3), (0, 3), {}, "k: expected a non-empty"),
        ((2, 8, 8, 3), (9, 3), {"boundary": "valid"}, "k: a 'valid' blur"),
        ((2, 8, 8, 3), (3, 3), {"boundary": "symmetric"}, "boundary: expected one of"),
        ((2, 8, 8, 3), (3, 3), {"method": "direct"}, "method: expected one of"),
    ],
)
def test_bad_input_raises_naming_the_argument(x_shape, k_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        blur(np.zeros(x_shape, np.float32), np.ones(k_shape, np.float32), **kwargs)


def test_non_finite_input_raises():
    x, k = np.zeros((8, 8, 3), np.float32), np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="x: expected finite"):
        blur(np.full_like(x, np.nan), k)
    with pytest.raises(ValueError, match="k: expected finite"):
        blur(x, np.full_like(k, np.inf))
    with pytest.raises(ValueError, match="y: expected finite"):
        blur_adjoint(np.full_like(x, np.nan), k)
    with pytest.raises(ValueError, match="kernel_shape"):
        crop_valid(x, 9)
