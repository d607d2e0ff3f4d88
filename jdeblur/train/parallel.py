"""Data parallelism: one per-device step run under ``shard_map`` (default) or ``pmap``, and hosts.

The mesh is 1-D, named ``data``, over every device of every process. Under ``shard_map`` the
state is replicated (``P()``) and the batch split along its first axis (``P('data')``); ``jax.make_mesh``
makes Explicit axes, so inputs are placed with their sharding before the call. Under ``pmap`` the
same function sees the same per-device shares: each process reshapes its local batch to
``(local_devices, per_device, ...)`` and the state is broadcast (``in_axes=None``).
"""
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jdeblur.checks import check_choice
from jdeblur.errors import UserError
from jdeblur.train.step import AXIS

MODES = ("shard_map", "pmap")


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Joins a multi-process run through ``jax.distributed.initialize``; returns whether it did.

    Explicit arguments win; otherwise JAX reads the cluster's environment (SLURM, Open MPI,
    Kubernetes/TPU pods), which we only try when one of those is present, so that a plain
    single-machine run never blocks waiting for a coordinator.
    """
    if coordinator is not None or num_processes is not None:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        return True
    cluster_markers = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES")
    if any(m in os.environ for m in cluster_markers) and int(os.environ.get("SLURM_NTASKS", "2")) > 1:
        jax.distributed.initialize()
        return True
    return False


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D ``data`` mesh over all global devices (or the first ``num_devices``, for tests)."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise UserError(f"config.train.num_devices={num_devices}: expected 1..{len(devices)} (the devices "
                            f"of this run) or None (all)")
        devices = devices[:num_devices]
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices)


def per_device_batch(global_batch: int, mesh) -> int:
    """The per-device share of the global batch; raises UserError unless the devices divide it."""
    n = mesh.devices.size
    if global_batch % n:
        raise UserError(
            f"config.train.global_batch={global_batch}: expected a multiple of the number of devices ({n})"
        )
    return global_batch // n


def replicate(tree, mesh):
    """Places a copy of a pytree on every device of ``mesh`` (replicated).

    A copy, because the step donates the state's buffers: aliasing the caller's arrays would
    delete them after the first step (``device_put(..., may_alias=False)`` still aliases the
    first device's shard in jax 0.10; a jitted copy never aliases an input it was not donated).
    """
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=NamedSharding(mesh, P()))(tree)


def place_batch(batch: dict, mesh, mode: str):
    """Moves a process's local batch (numpy) to its devices as the step wrapper of ``mode`` wants it."""
    check_choice(mode, "train.parallel", MODES)
    if mode == "pmap":
        local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
        return jax.tree.map(lambda x: np.reshape(x, (len(local), -1, *x.shape[1:])), batch)
    sharding = NamedSharding(mesh, P(AXIS))
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def parallelize(step_fn: Callable, mesh, mode: str = "shard_map") -> Callable:
    """Wraps the per-device ``step_fn(state, batch, key)`` for all devices of ``mesh``.

    The returned function takes the state (replicated), a batch placed by ``place_batch`` and a
    key, and returns the new state and metrics, both replicated. The state's buffers are donated.
    """
    check_choice(mode, "train.parallel", MODES)
    if mode == "shard_map":
        # check_vma=False: the kernel sampler's lax.switch mixes per-device (varying) keys with
        # replicated constants, which jax 0.10's varying-axes checker rejects inside switch
        # branches. Replication of the outputs holds by construction (everything returned is
        # pmean-ed or computed from replicated values), and the step marks params as varying
        # itself so gradients mean the same under both wrappers.
        mapped = jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()),
                               check_vma=False)
        return jax.jit(mapped, donate_argnums=(0,))
    return jax.pmap(step_fn, axis_name=AXIS, in_axes=(None, 0, None), out_axes=(None, None),
                    devices=list(mesh.devices.flat), donate_argnums=(0,))
