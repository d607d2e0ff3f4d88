"""The training step, written once as a per-device function.

``parallel.py`` runs it under ``jax.shard_map`` (default) or ``jax.pmap``; both see the same
function, so both give the same result. The step is invariant to how the global batch is spread:

- each image's degradation is drawn from ``fold_in(fold_in(key, step), global_image_index)``, so
  the same image gets the same blur and noise whatever the number of devices or microbatches;
- the loss is a mean over images, gradients are averaged over microbatches and then over devices
  (``pmean``), which equals the gradient of the global-batch mean up to float reduction order.

The train state is a plain dict (``jdeblur.train.state``): ``params``, ``opt_state``, ``step``
and, when enabled, ``ema_params`` (an exponential moving average of the parameters).

Non-finite values: every step reports ``finite`` (the loss and every gradient are finite), so the
loop can name the first bad step exactly without a host sync per step. With ``skip_nonfinite``
the step also leaves the state unchanged (but for ``step``) when ``finite`` is false, a select on
the device, not a branch on the host.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jdeblur import metrics
from jdeblur.errors import UserError

AXIS = "data"
NONFINITE_MODES = ("stop", "skip")  # config.train.nonfinite: what the loop does on a non-finite step


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf of ``tree`` is finite (a scalar bool)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def image_keys(key, step, num_local: int, axis_name: str = AXIS):
    """One key per local image, a function of (key, step, the image's index in the global batch)."""
    step_key = jax.random.fold_in(key, step)
    first = jax.lax.axis_index(axis_name) * num_local
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, first + jnp.arange(num_local))


def make_train_step(
    *,
    apply_fn: Callable,
    loss_fn: Callable,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    prepare: Callable,
    microbatches: int = 1,
    ema_decay: float = 0.0,
    skip_nonfinite: bool = False,
    axis_name: str = AXIS,
) -> Callable:
    """Builds ``step_fn(state, batch, key) -> (state, metrics)`` for one device's share of a batch.

    Args:
      apply_fn: ``apply_fn(params, inputs) -> outputs``, a dict holding the restored ``'image'``
        and whatever else the model estimates (``jdeblur.models.registry.apply_model``).
      loss_fn: ``loss_fn(outputs, targets) -> (scalar, dict of named terms)``, a mean over images.
      tx: the optimizer.
      schedule: its learning-rate schedule, logged as ``lr``.
      prepare: ``prepare(keys, batch) -> (inputs, targets)`` with one key per image: turns the
        input pipeline's batch into network inputs on the device (e.g. synthetic degradation);
        both are dicts of per-image arrays, ``targets['image']`` the sharp images.
      microbatches: the device's share is split into this many chunks whose gradients are
        accumulated, for when a device cannot hold its whole share at once.
      ema_decay: decay of the parameter average (0 keeps none).
      skip_nonfinite: keep the previous params, optimizer state and average when the loss or a
        gradient is NaN or Inf (the step counter still advances, so the next step draws new
        degradations).
      axis_name: the mesh axis the batch is split over.

    Returns:
      The per-device step. Every output is identical on all devices (replicated). The metrics
      include ``finite``: whether the loss and every gradient were finite.
    """

    def loss_and_metrics(params, inputs, targets):
        outputs = apply_fn(params, inputs)
        loss, terms = loss_fn(outputs, targets)
        psnr = jnp.mean(metrics.psnr(jnp.clip(outputs["image"], 0.0, 1.0), targets["image"]))
        return loss, {"loss": loss, "psnr": psnr, **{f"loss_{k}": v for k, v in terms.items()}}

    grad_fn = jax.grad(loss_and_metrics, has_aux=True)

    def step_fn(state, batch, key):
        num_local = jax.tree.leaves(batch)[0].shape[0]
        if num_local % microbatches:
            raise UserError(
                f"train.microbatches={microbatches} must divide the per-device batch {num_local}"
            )
        inputs, targets = prepare(image_keys(key, state["step"], num_local, axis_name), batch)

        def split(tree):
            chunks = jax.tree.map(lambda x: x.reshape(microbatches, num_local // microbatches, *x.shape[1:]), tree)
            return [jax.tree.map(lambda x, i=i: x[i], chunks) for i in range(microbatches)]

        params = state["params"]
        # Gradients of the device's own loss: without marking the replicated params as varying,
        # shard_map would transpose their implicit broadcast into a psum (a sum over devices, not
        # the mean) and pmap would not, so the two paths would disagree.
        local_params = jax.lax.pcast(params, axis_name, to="varying")
        first = jax.tree.map(lambda x: x[:1], (inputs, targets))
        zero_stats = jax.eval_shape(loss_and_metrics, params, *first)[1]
        zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), (params, zero_stats))
        zeros = jax.lax.pcast(zeros, axis_name, to="varying")
        # A Python loop, not lax.scan: XLA:CPU runs the convolutions inside a scan an order of
        # magnitude slower (measured on the U-Net experiment's step: 11-13 s against 0.8 s per step,
        # even with unroll=True); microbatches is a small static count.
        grads, stats = zeros
        for chunk in zip(split(inputs), split(targets)):
            grads, stats = jax.tree.map(jnp.add, (grads, stats), grad_fn(local_params, *chunk))
        grads, stats = jax.lax.pmean(
            jax.tree.map(lambda a: a / microbatches, (grads, stats)), axis_name
        )

        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        if "ema_params" in state:
            new_state["ema_params"] = optax.incremental_update(
                new_state["params"], state["ema_params"], step_size=1.0 - ema_decay
            )
        finite = all_finite((stats["loss"], grads))
        if skip_nonfinite:
            new_state.update(jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                          {k: v for k, v in new_state.items() if k != "step"},
                                          {k: v for k, v in state.items() if k != "step"}))
        stats["finite"] = finite
        stats["grad_norm"] = optax.tree.norm(grads)
        stats["lr"] = jnp.asarray(schedule(state["step"]), jnp.float32)
        return new_state, stats

    return step_fn
