"""Classical non-blind deconvolution: inverse filter, Wiener, Richardson-Lucy, TV."""
from jdeblur.restore.fourier import apply_edge_taper, inverse_filter, psf2otf, wiener
from jdeblur.restore.richardson_lucy import richardson_lucy
from jdeblur.restore.tv import tv_deconvolution

__all__ = ["apply_edge_taper", "inverse_filter", "psf2otf", "richardson_lucy", "tv_deconvolution", "wiener"]
