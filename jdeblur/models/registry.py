"""Finds a model by name and builds it from a named preset (variant) plus keyword overrides.

A model module ``jdeblur.models.<name>`` qualifies when it defines ``VARIANTS`` (preset name ->
field values) and ``Model(*, variant=None, **kw)``; the trainer calls
``get_model(config.model.name, variant=config.model.variant, **config.model.kwargs)``.
"""
import dataclasses
import importlib
import pkgutil

import jax.numpy as jnp

import jdeblur.models

# Fields that name a dtype may come from a config as a string ('bfloat16').
_DTYPE_FIELDS = ("dtype", "param_dtype")


def list_models() -> dict[str, list[str]]:
    """Every registered model name with its variant names."""
    models = {}
    for info in pkgutil.iter_modules(jdeblur.models.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"jdeblur.models.{info.name}")
        if hasattr(module, "Model") and hasattr(module, "VARIANTS"):
            models[info.name] = list(module.VARIANTS)
    return models


def get_model(name: str, *, variant: str | None = None, **kw):
    """Builds model ``name`` (a Flax module) from preset ``variant`` with fields overridden by ``kw``."""
    models = list_models()
    if name not in models:
        raise ValueError(f"model: expected one of {sorted(models)}, got {name!r}")
    return importlib.import_module(f"jdeblur.models.{name}").Model(variant=variant, **kw)


def build_variant(module_cls, variants: dict[str, dict], variant: str | None, overrides: dict):
    """Instantiates ``module_cls`` with the fields of preset ``variant`` (class defaults if None), then ``overrides``.

    Raises ValueError for an unknown variant or field, listing the valid ones. Lists become tuples
    (configs deliver lists; module fields must stay hashable for jit caching).
    """
    if variant is not None and variant not in variants:
        raise ValueError(
            f"variant: expected one of {sorted(variants)} for {module_cls.__name__}, got {variant!r}"
        )
    fields = dict(variants[variant]) if variant is not None else {}
    fields.update(overrides)
    valid = {f.name for f in dataclasses.fields(module_cls) if f.init and f.name not in ("parent", "name")}
    unknown = sorted(set(fields) - valid)
    if unknown:
        raise ValueError(f"{module_cls.__name__}: unknown field(s) {unknown}; valid fields: {sorted(valid)}")
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(value)
        elif key in _DTYPE_FIELDS and isinstance(value, str):
            fields[key] = jnp.dtype(value)
    return module_cls(**fields)
