"""Finds a model by name, builds it from a named preset (variant) plus keyword overrides, and calls it.

A model module ``jdeblur.models.<name>`` qualifies when it defines ``VARIANTS`` (preset name ->
field values) and ``Model(*, variant=None, **kw)``. The registry owns ``config.model``:

- ``name``: a model module (``list_models()``: 'unet', 'nafnet', 'unfolded', 'blind_unfolded',
  'two_stage');
- ``variant``: one of its ``VARIANTS``, or None for the class defaults;
- ``kwargs``: fields of the model class that override the variant's (e.g. ``{'width': 24}``);

``build_model(config.model)`` builds it, ``check_model_config(config.model)`` checks it.

The calling convention. A model's ``__call__`` takes the blurred images first, then the other
observations it declares in its class attribute ``inputs`` (default ``('blurred',)``: a blind
model), by those names: ``'kernel'`` ((kh, kw) shared, or (N, kh, kw)) and ``'noise_sigma'``
(a scalar or (N,)) for a non-blind one. It returns the restored images; what else it estimates
on the way (a blind model's kernel), listed in its class attribute ``estimates``, it sows into
the ``'intermediates'`` collection under that name, which ``apply_model`` returns beside the image.
A model may take other observations in training, declared in ``training_inputs`` (a blind model
whose kernel search has no parameters is trained as its non-blind part, on the true kernels).
"""
import dataclasses
import importlib
import pathlib
import pkgutil

import jax
import jax.numpy as jnp

from jdeblur.errors import UserError, one_line

# Fields that name a dtype may come from a config as a string ('bfloat16').
_DTYPE_FIELDS = ("dtype", "param_dtype")


def list_models() -> dict[str, list[str]]:
    """Every registered model name with its variant names."""
    models = {}
    for info in pkgutil.iter_modules([str(pathlib.Path(__file__).parent)]):
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
        raise UserError(f"model: expected one of {sorted(models)}, got {name!r}")
    return importlib.import_module(f"jdeblur.models.{name}").Model(variant=variant, **kw)


def build_model(model_cfg):
    """The model of an experiment's ``config.model`` (name, variant, kwargs)."""
    return get_model(model_cfg.name, variant=model_cfg.variant, **model_cfg.kwargs)


def model_fields(module_cls) -> dict[str, object]:
    """The fields a model class takes, with their declared types (Flax's ``parent`` and ``name`` left out)."""
    return {f.name: f.type for f in dataclasses.fields(module_cls) if f.init and f.name not in ("parent", "name")}


def build_variant(module_cls, variants: dict[str, dict], variant: str | None, overrides: dict):
    """Instantiates ``module_cls`` with the fields of preset ``variant`` (class defaults if None), then ``overrides``.

    Raises UserError for an unknown variant or field, listing the valid ones. Lists become tuples
    (configs deliver lists; module fields must stay hashable for jit caching).
    """
    if variant is not None and variant not in variants:
        raise UserError(
            f"variant: expected one of {sorted(variants)} for {module_cls.__name__}, got {variant!r}"
        )
    fields = dict(variants[variant]) if variant is not None else {}
    fields.update(overrides)
    valid = model_fields(module_cls)
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise UserError(f"{module_cls.__name__}: unknown field(s) {unknown}; valid fields: {sorted(valid)}")
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = tuple(value)
        elif key in _DTYPE_FIELDS and isinstance(value, str):
            fields[key] = jnp.dtype(value)
    return module_cls(**fields)


def initialize_abstractly(model) -> None:
    """Traces ``model.init`` on a small input of the sizes it takes: shapes only, nothing computed."""
    side = model.size_multiple * -(-32 // model.size_multiple)  # room for a blind model's kernel estimate
    inputs = jax.eval_shape(lambda: example_inputs(model, size=side, kernel_size=5))
    jax.eval_shape(model.init, jax.random.key(0), *inputs.values())


def check_model_config(model_cfg) -> None:
    """Raises UserError, naming the field, unless ``config.model`` builds a model that initialises.

    The model is initialised abstractly (``jax.eval_shape``), so a bad value in ``kwargs``, such
    as ``{'width': 0}``, fails here, before anything is written, and not minutes into a run.
    """
    models = list_models()
    name, variant, kwargs = model_cfg.name, model_cfg.variant, dict(model_cfg.kwargs)
    if name not in models:
        raise UserError(f"config.model.name={name!r}: unknown model; valid models: {', '.join(sorted(models))}")
    if variant is not None and variant not in models[name]:
        raise UserError(f"config.model.variant={variant!r}: unknown variant of {name}; "
                        f"valid variants: {', '.join(models[name])}")
    preset = get_model(name, variant=variant)
    fields = model_fields(type(preset))
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise UserError(f"config.model.kwargs: unknown field(s) {unknown} of {name}; valid fields: "
                        f"{', '.join(sorted(fields))}")
    try:
        initialize_abstractly(build_model(model_cfg))
        return
    except Exception as error:  # whatever a bad field makes the model raise
        failure = error
    where = f"variant {variant}'s" if variant is not None else "the default"
    for field, value in kwargs.items():  # the first field that fails alone is the one to name
        try:
            initialize_abstractly(get_model(name, variant=variant, **{field: value}))
        except Exception as error:
            expected = f"{getattr(fields[field], '__name__', fields[field])}, such as {getattr(preset, field)!r}"
            raise UserError(f"config.model.kwargs.{field}={value!r}: expected {expected} ({where}); {name} cannot "
                            f"be built with it: {_describe(error)}") from error
    raise UserError(f"config.model.kwargs={kwargs!r}: expected fields that {name} can be built with together; "
                    f"{_describe(failure)}") from failure


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {one_line(error)}"


def model_inputs(module, *, training: bool = False) -> tuple[str, ...]:
    """The observations ``module`` takes, in call order (``('blurred',)`` for a blind model); in
    training, its ``training_inputs`` where it declares them."""
    if training and hasattr(module, "training_inputs"):
        return tuple(module.training_inputs)
    return tuple(getattr(module, "inputs", ("blurred",)))


def model_estimates(module) -> tuple[str, ...]:
    """What ``module`` estimates besides the image and sows (e.g. ``('kernel',)``)."""
    return tuple(getattr(module, "estimates", ()))


def apply_model(module, params, inputs: dict, *, training: bool = False) -> dict:
    """Runs ``module`` on the observations it takes from ``inputs``: ``{'image': ..., **sown}``.

    ``training``: pass the observations the model takes in training (``model_inputs``), to the
    module the model trains as where it has one (``module.for_training()``, e.g. NAFNet's scanned blocks).

    ``sown`` holds what the model sowed into ``'intermediates'`` (e.g. ``'kernel'``), each the
    value of its last sow.
    """
    args = [inputs[name] for name in model_inputs(module, training=training)]
    if training and hasattr(module, "for_training"):
        module = module.for_training()
    image, state = module.apply({"params": params}, *args, mutable=["intermediates"])
    sown = {name: values[-1] for name, values in state.get("intermediates", {}).items()}
    return {"image": image, **sown}


def example_inputs(module, *, size: int, kernel_size: int, batch: int = 1, training: bool = False) -> dict:
    """Inputs of the shapes the model takes (in training, with ``training``), for initialisation
    and shape inference."""
    inputs = {"blurred": jnp.zeros((batch, size, size, 3), jnp.float32),
              "kernel": jnp.zeros((batch, kernel_size, kernel_size), jnp.float32).at[
                  :, kernel_size // 2, kernel_size // 2].set(1.0),
              "noise_sigma": jnp.full((batch,), 0.01, jnp.float32)}
    return {name: inputs[name] for name in model_inputs(module, training=training)}
