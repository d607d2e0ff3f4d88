"""jdeblur: image deblurring in JAX/Flax.

The imaging model is y = H x + n: ``x`` the sharp image, ``H`` a blur (a convolution with a
kernel), ``n`` noise. Images are NHWC (or HWC) float32 in [0, 1] throughout the package.

The public names below are imported on first use (PEP 562), so that ``import jdeblur`` and the
``jdeblur --help`` command stay instant (importing jax alone takes about a second); the reference
is docs/api.md.
"""

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    # A trained model.
    "load": "jdeblur.deblurrer",
    "Deblurrer": "jdeblur.deblurrer",
    # The imaging model: operators, kernels, noise, degradation.
    "blur": "jdeblur.physics.operators",
    "blur_adjoint": "jdeblur.physics.operators",
    "gaussian_kernel": "jdeblur.physics.kernels",
    "disk_kernel": "jdeblur.physics.kernels",
    "box_kernel": "jdeblur.physics.kernels",
    "linear_motion_kernel": "jdeblur.physics.kernels",
    "camera_shake_kernel": "jdeblur.physics.trajectories",
    "gp_motion_kernel": "jdeblur.physics.trajectories",
    "gaussian_noise": "jdeblur.physics.noise",
    "poisson_noise": "jdeblur.physics.noise",
    "poisson_gaussian_noise": "jdeblur.physics.noise",
    "estimate_noise_sigma": "jdeblur.physics.noise",
    "degrade": "jdeblur.physics.degrade",
    "default_degrade_config": "jdeblur.physics.degrade",
    # Classical restoration.
    "wiener": "jdeblur.restore.fourier",
    "inverse_filter": "jdeblur.restore.fourier",
    "richardson_lucy": "jdeblur.restore.richardson_lucy",
    "tv_deconvolution": "jdeblur.restore.tv",
    # Metrics.
    "psnr": "jdeblur.metrics",
    "ssim": "jdeblur.metrics",
    "ms_ssim": "jdeblur.metrics",
    # Errors.
    "UserError": "jdeblur.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jdeblur' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted([*globals(), *__all__])
