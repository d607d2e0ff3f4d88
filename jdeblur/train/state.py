"""The train state of an experiment: a plain dict of arrays, made real or abstract from the config.

Keys: ``params`` (the model's parameters), ``opt_state`` (the optimizer's), ``step`` (int32
scalar: updates applied) and, when ``config.train.ema_decay > 0``, ``ema_params`` (an exponential
moving average of the parameters, the ones evaluated).
"""
import jax
import jax.numpy as jnp
import optax

from jdeblur.models.registry import example_inputs


def create_state(params, tx: optax.GradientTransformation, *, ema: bool) -> dict:
    """The initial train state for ``params``; ``ema`` adds a parameter average starting at params."""
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    if ema:
        state["ema_params"] = jax.tree.map(jnp.copy, params)
    return state


def _init_params(config, model, key):
    inputs = example_inputs(model, size=config.data.patch_size, kernel_size=config.degrade.blur.size, training=True)
    return model.init(key, *inputs.values())["params"]


def initial_state(config, model, tx, key):
    """The train state at step 0."""
    # Initialisation runs once: compile it without optimisation (10x faster to compile on CPU,
    # where XLA otherwise spends seconds per parameter array on the random-number kernels).
    init = jax.jit(lambda k: _init_params(config, model, k),
                   compiler_options={"xla_backend_optimization_level": 0})
    return create_state(init(key), tx, ema=config.train.ema_decay > 0)


def abstract_state(config, model, tx):
    """The shapes and dtypes of the train state, computed without running anything."""
    params = jax.eval_shape(lambda: _init_params(config, model, jax.random.key(0)))
    return jax.eval_shape(lambda p: create_state(p, tx, ema=config.train.ema_decay > 0), params)


def eval_params(state):
    """The parameters an evaluation uses: the average when the state keeps one."""
    return state["ema_params"] if "ema_params" in state else state["params"]
