"""Training at test size: a tiny network's step run over 1-8 devices, and a tiny experiment config."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jdeblur.train import parallel
from jdeblur.train import step as steplib
from jdeblur.train.defaults import base_config
from jdeblur.train.state import create_state
from jdeblur.workdir import load_trained


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x + nn.Conv(3, (3, 3))(nn.relu(nn.Conv(4, (3, 3))(x)))


MODEL = TinyNet()


def apply_fn(params, inputs):
    return {"image": MODEL.apply({"params": params}, inputs["blurred"])}


def loss_fn(outputs, targets):
    l1 = jnp.mean(jnp.abs(outputs["image"] - targets["image"]))
    return l1, {"l1": l1}


def prepare(keys, batch):
    """Per-image noise from the image's key: the degradation must follow the image, not the device."""
    sharp = batch["sharp"].astype(jnp.float32) / 255.0
    noise = jax.vmap(lambda k: 0.1 * jax.random.normal(k, sharp.shape[1:]))(keys)
    return {"blurred": sharp + noise}, {"image": sharp}


def run(batches, *, devices, mode="shard_map", microbatches=1, seed=1, steps=3, skip_nonfinite=False,
        on_step=lambda state: None):
    """Trains ``steps`` steps on ``batches``; returns the final state and each step's metrics (on the host).

    ``on_step`` sees the state (on the host) after each step."""
    params = MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    tx = optax.adam(1e-2)
    mesh = parallel.make_mesh(devices)
    step_fn = steplib.make_train_step(
        apply_fn=apply_fn, loss_fn=loss_fn, tx=tx, schedule=optax.constant_schedule(1e-2),
        prepare=prepare, microbatches=microbatches, ema_decay=0.5, skip_nonfinite=skip_nonfinite,
    )
    train_step = parallel.parallelize(step_fn, mesh, mode)
    state = parallel.replicate(create_state(params, tx, ema=True), mesh)
    history = []
    for i in range(steps):
        state, stats = train_step(state, parallel.place_batch({"sharp": batches[i]}, mesh, mode), jax.random.key(seed))
        history.append(jax.device_get(stats))
        on_step(jax.device_get(state))
    return jax.device_get(state), history


def tiny_config(data_dir, **train):
    c = base_config()
    c.model.name, c.model.variant = "unet", "tiny"
    c.data.data_dir = data_dir
    c.data.patch_size = 16
    c.data.patch_schedule = ((2, 24),)  # a resume at step 2 crosses the switch to larger patches
    c.data.read_threads = 1
    c.degrade.blur.size = 5
    c.degrade.blur.families = ("gaussian", "linear_motion")
    c.degrade.blur.weights = (1.0, 1.0)
    c.degrade.blur.gaussian.sigma = (0.5, 1.0)
    c.degrade.blur.linear_motion.length = (2.0, 5.0)
    # Two devices: the sharding itself is tested in test_step.py and test_distributed.py; here it
    # would only multiply the compile and run time of every loop test.
    c.train.update(dict(steps=4, global_batch=8, log_every=2, eval_every=4, checkpoint_every=2, progress=False,
                        num_devices=2))
    c.train.update(train)
    c.eval.update(dict(max_images=1, samples=1, wiener_balances=(1e-2,), rl_iterations=2, max_pixels=128 * 128))
    return c


def params_of(workdir, which="latest"):
    return jax.tree.leaves(load_trained(workdir, which)[2])
