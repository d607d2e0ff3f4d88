"""What the deconvolution methods accept and return: scikit-image's dtype rule, and errors that name
the argument for an empty image, a Python list and a complex image."""
import jax
import numpy as np
import pytest
import skimage.restoration

from jdeblur.restore import richardson_lucy, wiener
from jdeblur.restore.fourier import inverse_filter

METHODS = {
    "wiener": (lambda y, k: wiener(y, k, 0.05), lambda y, k: skimage.restoration.wiener(y, k, 0.05)),
    "richardson_lucy": (lambda y, k: richardson_lucy(y, k, num_iter=3),
                        lambda y, k: skimage.restoration.richardson_lucy(y, k, num_iter=3)),
}


@pytest.mark.parametrize("method", METHODS)
def test_result_dtype_follows_scikit_image(x64, rng, method):
    """Defect: float16 images came back float32 as documented otherwise, and a float64 kernel made a
    float32 image's result float64 under x64; skimage's rule is the image's float type, at least float32."""
    ours, theirs = METHODS[method]
    for image_dtype in (np.float16, np.float32, np.float64):
        for kernel_dtype in (np.float32, np.float64):
            image = rng.random((12, 14)).astype(image_dtype)
            kernel = (rng.random((3, 3)) / 4.5).astype(kernel_dtype)
            expected = theirs(image, kernel)
            got = ours(image[..., None], kernel)
            assert got.dtype == expected.dtype, (image_dtype, kernel_dtype, got.dtype, expected.dtype)
            np.testing.assert_allclose(got[..., 0], expected, atol=1e-3 if expected.dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_float64_without_x64_is_computed_in_float32(rng, method):
    ours, _ = METHODS[method]
    assert not jax.config.jax_enable_x64
    image = rng.random((12, 14, 1))
    assert ours(image, np.full((3, 3), 1 / 9)).dtype == np.float32  # what JAX holds a float64 array as


@pytest.mark.parametrize("call", [lambda y, k: wiener(y, k, 0.05), lambda y, k: inverse_filter(y, k),
                                  lambda y, k: richardson_lucy(y, k, num_iter=2)])
def test_errors_name_the_argument(call):
    kernel, image = np.full((3, 3), 1 / 9), np.full((8, 8, 1), 0.5)
    for bad_image, problem in ((np.zeros((0, 0, 3)), "image: expected a non-empty array, got shape (0, 0, 3)"),
                               (image.tolist(), "image: expected an array (numpy or JAX), got a Python list"),
                               (image + 0j, "image: expected real values, got complex128"),
                               (image.astype(str), "image: expected numbers")):
        with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            call(bad_image, kernel)
    with pytest.raises(ValueError, match="kernel: expected a non-empty array"):
        call(image, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="kernel: expected an array"):
        call(image, kernel.tolist())
