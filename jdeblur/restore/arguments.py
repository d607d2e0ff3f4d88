"""Argument checks and dtype handling shared by the deconvolution methods.

Images are NHWC (or HWC) float32 in [0, 1]; a kernel is one (kh, kw) array shared by the batch
or a (B, kh, kw) stack with one kernel per image, applied to every channel alike.

Result dtype, as scikit-image's ``restoration`` functions: the image's floating type, at least
float32 (float16 and integer images give float32, float64 gives float64), whatever the kernel's
type; float64 needs JAX's 64-bit mode (``jax.enable_x64``), without which JAX holds float64 arrays
as float32.
"""
import operator

import jax.numpy as jnp

from jdeblur.checks import check_finite, check_rank, check_real_array, is_concrete


def prepare_problem(image, kernel):
    """Checks an (image, kernel) pair and casts both to the image's float dtype (at least float32).

    Args:
      image: (H, W, C) or (B, H, W, C) observation.
      kernel: (kh, kw), or (B, kh, kw) with ``image`` of rank 4.

    Returns:
      ``(image, kernel)`` as JAX arrays of the same floating dtype.
    """
    check_real_array(image, "image")
    check_real_array(kernel, "kernel")
    check_rank(image, "image", (3, 4), "HWC or NHWC")
    check_rank(kernel, "kernel", (2, 3), "(kh, kw) or per-image (B, kh, kw)")
    image_shape, kernel_shape = tuple(jnp.shape(image)), tuple(jnp.shape(kernel))
    if len(kernel_shape) == 3 and (len(image_shape) != 4 or kernel_shape[0] != image_shape[0]):
        raise ValueError(
            f"kernel: per-image kernels of shape {kernel_shape} need an NHWC image with the same "
            f"batch size, got image shape {image_shape}"
        )
    if kernel_shape[-2] > image_shape[-3] or kernel_shape[-1] > image_shape[-2]:
        raise ValueError(
            f"kernel: expected a kernel no larger than the image ({image_shape[-3]}x{image_shape[-2]}), "
            f"got {kernel_shape[-2]}x{kernel_shape[-1]}"
        )
    check_finite(image, "image")
    check_finite(kernel, "kernel")
    dtype = jnp.promote_types(jnp.result_type(image), jnp.float32)
    return jnp.asarray(image, dtype), jnp.asarray(kernel, dtype)


def check_num_iter(num_iter) -> int:
    """Returns ``num_iter`` as a Python int >= 1 (it fixes the loop length, so it must be static)."""
    if not is_concrete(num_iter):
        raise ValueError("num_iter: expected a static Python int >= 1, got a traced value")
    try:
        value = operator.index(num_iter)
    except TypeError:
        raise ValueError(f"num_iter: expected an int >= 1, got {num_iter!r}") from None
    if value < 1:
        raise ValueError(f"num_iter: expected an int >= 1, got {value}")
    return value
