"""Running observation normalization (as VecNormalize: running mean/var over every observation seen, clip 10).

The statistics are part of the training carry, so they are checkpointed, vmapped over seeds and carried from task
to task like the parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init_stats(size: int) -> RunningStats:
    # count starts at a tiny epsilon (as in VecNormalize) so the first update is well defined.
    return RunningStats(mean=jnp.zeros(size), var=jnp.ones(size), count=jnp.asarray(1e-4))


def update_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Merge a batch [N, size] into the running statistics (parallel mean/variance combination)."""
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    batch_count = batch.shape[0]
    delta = batch_mean - stats.mean
    total = stats.count + batch_count
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + delta**2 * stats.count * batch_count / total
    return RunningStats(mean=mean, var=m2 / total, count=total)


def normalize(stats: RunningStats, obs: jax.Array, clip: float, enabled: bool = True) -> jax.Array:
    """(obs - mean) / sqrt(var + 1e-8), clipped to [-clip, clip]; identity when disabled."""
    if not enabled:
        return obs
    return jnp.clip((obs - stats.mean) / jnp.sqrt(stats.var + 1e-8), -clip, clip)
