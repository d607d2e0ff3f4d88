"""Restoration networks, one architecture per module, found by name through the registry.

``get_model('unet', variant='small')`` or ``get_model('nafnet', variant='width32', tlc=True)``
returns a Flax Linen module applied as ``module.apply({'params': params}, x)`` to NHWC float32
images in [0, 1] whose height and width are multiples of ``module.size_multiple``.
"""
from jdeblur.models.registry import get_model, list_models

__all__ = ["get_model", "list_models"]
