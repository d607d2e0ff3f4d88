"""jdeblur: image deblurring in JAX/Flax.

The imaging model is y = H x + n: ``x`` the sharp image, ``H`` a blur (a convolution with a
kernel), ``n`` noise. Images are NHWC (or HWC) float32 in [0, 1] throughout the package.
"""

__version__ = "0.1.0"
