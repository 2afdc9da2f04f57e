"""Several devices and hosts: the carry's seed axis (or, with fewer seeds than devices, the env axis) is sharded
over all devices with `jax.sharding`; the compiled chunk program then runs SPMD, each device on its slice.

- One host, several devices (GPUs, or CPU with XLA_FLAGS=--xla_force_host_platform_device_count=N): nothing to do;
  the seed axis is split when the number of seeds divides evenly, else the env axis when `num_envs` does; else the
  run stays on one device (with a message).
- Several hosts: `distributed=true` calls `jax.distributed.initialize()` with JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID from the environment (jax itself reads only the first; with none of them set,
  jax detects a cluster such as SLURM or a TPU pod), and every host runs the same command. Every host builds the
  same initial carry (it depends only on the seeds), so global arrays are assembled from the local copy; metrics
  are gathered to every host and only process 0 writes the run directory and trackers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
AXIS = "batch"


PROCESS_ENV = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def process_arguments(environ: Mapping[str, str]) -> dict[str, int]:
    """`jax.distributed.initialize` arguments from JAX_NUM_PROCESSES / JAX_PROCESS_ID (those that are set)."""
    arguments = {}
    for argument, variable in PROCESS_ENV.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        try:
            arguments[argument] = int(value)
        except ValueError:
            raise ValueError(f"{variable}={value!r} is not an integer") from None
    both = {"num_processes", "process_id"} <= arguments.keys()
    if both and not 0 <= arguments["process_id"] < arguments["num_processes"]:
        raise ValueError(f"JAX_PROCESS_ID={arguments['process_id']} is not in [0, JAX_NUM_PROCESSES="
                         f"{arguments['num_processes']})")
    return arguments


def initialize(enabled: bool) -> None:
    """Join the other hosts (multi-host runs only); a no-op for one host."""
    if enabled:
        jax.distributed.initialize(**process_arguments(os.environ))


def is_main_process() -> bool:
    return jax.process_index() == 0


def shard_axis(n_devices: int, n_seeds: int, num_envs: int) -> str | None:
    """Which axis of the carry to split over `n_devices`: "seed", "env", or None (one device)."""
    if n_devices <= 1:
        return None
    if n_seeds % n_devices == 0:
        return "seed"
    if num_envs % n_devices == 0:
        return "env"
    return None


def _spec(path: tuple, leaf: Any, axis: str) -> PartitionSpec:
    if np.size(leaf) == 0:  # empty arrays (e.g. an MJX model's `act`): replicated, as XLA returns them
        return PartitionSpec()
    if axis == "seed":
        return PartitionSpec(AXIS) if np.ndim(leaf) >= 1 else PartitionSpec()
    # env axis: only env states ([seed, env, ...]) are split; parameters and statistics are replicated.
    in_env_state = any(getattr(key, "name", None) == "env_state" for key in path)
    return PartitionSpec(None, AXIS) if in_env_state and np.ndim(leaf) >= 2 else PartitionSpec()


def make_placement(n_seeds: int, num_envs: int, warn: Callable[[str], None] = print) -> Callable | None:
    """A function putting a carry (or any pytree with a leading seed axis) onto all devices, or None for one
    device."""
    devices = jax.devices()
    axis = shard_axis(len(devices), n_seeds, num_envs)
    if axis is None:
        if len(devices) > 1:
            warn(f"{len(devices)} devices but neither the {n_seeds} seeds nor the {num_envs} envs divide evenly: "
                 "running on one device")
        return None
    mesh = Mesh(np.asarray(devices), (AXIS,))

    def place(tree: PyTree) -> PyTree:
        def put(path: tuple, leaf: Any) -> jax.Array:
            sharding = NamedSharding(mesh, _spec(path, leaf, axis))
            if jax.process_count() == 1:
                return jax.device_put(leaf, sharding)
            if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # already global (a program's output)
                return leaf if leaf.sharding.is_equivalent_to(sharding, leaf.ndim) else jax.device_put(leaf, sharding)
            host = np.asarray(leaf)  # the same on every host: assemble the global array from the local copy
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree_util.tree_map_with_path(put, tree)

    place.axis = axis  # type: ignore[attr-defined]
    return place


BARRIER_TIMEOUT_MS = 4 * 3600 * 1000  # a host may still be compiling (minutes on CPU) when another arrives


def barrier(name: str, timeout_ms: int = BARRIER_TIMEOUT_MS) -> None:
    """Wait until every host reaches the barrier `name` (reusable once passed); a no-op for one host.

    The gather in `to_host` waits behind one: on CPU hosts (gloo) a collective's first use times out after 30 s if
    the other hosts are not there yet, and one host can be minutes behind, still compiling its chunk program.
    """
    if jax.process_count() == 1:
        return
    from jax._src import distributed as jax_distributed  # the coordination-service client of initialize()

    jax_distributed.global_state.client.wait_at_barrier(name, timeout_ms)


def to_host(tree: PyTree) -> PyTree:
    """Device arrays to NumPy on this host (gathering shards from other hosts when there are several)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    barrier("purejaxsphere.to_host")
    return multihost_utils.process_allgather(tree, tiled=True)
