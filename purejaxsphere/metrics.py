"""Spectral and plasticity diagnostics of the actor, jittable (computed inside the compiled chunk program).

Effective rank (Roy & Vetterli): r_e = exp(-sum_i p_i log p_i), p_i = lambda_i / sum_j lambda_j over the eigenvalues of
a PSD matrix. Tracked on a fixed probe batch of (normalized) observations:
- the eNTK of the actor mean, K = J J^T, J = d mean / d (all actor parameters), [B*A, B*A];
- the weighted expert-feature Gram A = Phi^T Phi / T of SPHERE (sphere.weighted_expert_features);
- the per-layer feature Grams (every expert's post-ReLU hidden layer), ReDo's dormant-neuron ratio, and the routing
  load and entropy of the gate.

The eNTK is built column block by column block without ever holding J: for a block of c probe states,
one vjp of the mean on those c states (c*A one-hot cotangents) gives the c*A rows of J as parameter-shaped tangents,
and one linearized jvp of the mean on the whole probe batch maps them to the c*A columns J J^T e_r. Memory is
c * A * n_params floats (c = `block_size`, default 1) instead of B * A * n_params for J (8 GB for 64 states x 19
actions x 1.7M parameters); compute is B*A jvps of the probe batch, about A/3 times less than forming J J^T from J.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxsphere.networks import Actor, ActorOutput, routing_entropy
from purejaxsphere.sphere import weighted_expert_features

PyTree = Any
MeanFn = Callable[[PyTree, jax.Array], jax.Array]  # (params, obs [B, obs]) -> action mean [B, A]


def effective_rank(eigenvalues: jax.Array) -> jax.Array:
    """exp(entropy of the normalised eigenvalues); negative round-off is clipped to 0; an all-zero spectrum has
    rank 0."""
    lam = jnp.clip(eigenvalues, 0.0)
    total = jnp.sum(lam)
    p = lam / jnp.where(total > 0, total, 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.where(total > 0, jnp.exp(entropy), 0.0)


def after(x: jax.Array, previous: jax.Array) -> jax.Array:
    """`x` plus an exact zero computed from `previous`: the same values, available only once `previous` is.

    Why: on CPU every eigendecomposition is a LAPACK call that jaxlib (0.10) splits over XLA's intra-op thread pool
    and then blocks on. XLA runs independent calls concurrently; once as many are blocked as the pool has threads
    (two on a 2-core machine), nobody is left to run their pieces and the program hangs for ever (seen in bench
    runs: every worker idle, two threads in lapack_ssyevd_ffi -> ParallelBatchMap -> BlockingCounter::Wait).
    Chaining the diagnostics' eigendecompositions keeps one in flight at a time. The dependency must be a real
    read: XLA:CPU orders its thunks by the buffers they read, and an optimization barrier only aliases buffers
    (with one, the hang still happened). min(|previous|, 0) is 0 for every number but NaN, so `x` is unchanged.
    """
    return x + jnp.minimum(jnp.abs(jnp.sum(previous)), 0.0).astype(x.dtype)


def psd_effective_rank(matrix: jax.Array) -> jax.Array:
    """Effective rank of a symmetric PSD matrix. Eigenvalues below n * eps * max (numerical rank tolerance, as in
    numpy.linalg.matrix_rank) count as 0, so float round-off does not inflate the rank."""
    symmetric = 0.5 * (matrix + matrix.T)
    lam = jnp.linalg.eigvalsh(symmetric)
    tol = jnp.max(jnp.abs(lam)) * matrix.shape[0] * jnp.finfo(lam.dtype).eps
    return effective_rank(jnp.where(lam > tol, lam, 0.0))


def gram_effective_rank(x: jax.Array) -> jax.Array:
    """Effective rank of the Gram x^T x / T of rows x [T, D], from the T x T kernel x x^T / T when D > T (same
    non-zero spectrum)."""
    t, d = x.shape
    gram = x @ x.T / t if d > t else x.T @ x / t
    return psd_effective_rank(gram)


def weighted_feature_rank(features: jax.Array, weights: jax.Array) -> jax.Array:
    """Effective rank of SPHERE's A = Phi^T Phi / T, Phi = weighted_expert_features(features [T,E,d], weights [T,E])."""
    return gram_effective_rank(weighted_expert_features(features, weights))


def layer_feature_rank(hidden: jax.Array) -> jax.Array:
    """Mean over experts of the effective rank of each expert's feature Gram h_e^T h_e / T; hidden [T, E, d]."""
    return jnp.mean(jax.vmap(gram_effective_rank, in_axes=1)(hidden))


def entk(mean_fn: MeanFn, params: PyTree, obs: jax.Array, block_size: int = 1) -> jax.Array:
    """Empirical NTK K = J J^T of the action mean on obs [B, obs_dim], J = d mean[B, A] / d params: [B*A, B*A],
    row/column index b*A + a. Built in blocks of `block_size` states (B must be a multiple of it), see module doc."""
    batch = obs.shape[0]
    if batch % block_size:
        raise ValueError(f"probe batch {batch} is not a multiple of block_size {block_size}")
    _, jvp_batch = jax.linearize(lambda p: mean_fn(p, obs), params)  # tangent -> J tangent, [B, A]

    def block_columns(obs_block: jax.Array) -> jax.Array:
        means, vjp_block = jax.vjp(lambda p: mean_fn(p, obs_block), params)
        rows = means.size  # block_size * A
        cotangents = jnp.eye(rows, dtype=means.dtype).reshape((rows,) + means.shape)
        (j_rows,) = jax.vmap(vjp_block)(cotangents)  # rows of J as parameter pytrees, leading axis `rows`
        return jax.vmap(jvp_batch)(j_rows).reshape(rows, -1)  # [rows, B*A] = (J J^T)[rows, :]

    blocks = obs.reshape((batch // block_size, block_size) + obs.shape[1:])
    columns = jax.lax.map(block_columns, blocks)  # [n_blocks, block_size*A, B*A]
    return columns.reshape(-1, columns.shape[-1])  # symmetric, so rows == columns


def entk_effective_rank(mean_fn: MeanFn, params: PyTree, obs: jax.Array, block_size: int = 1) -> jax.Array:
    """Effective rank of the eNTK of the action mean on the probe batch."""
    return psd_effective_rank(entk(mean_fn, params, obs, block_size))


def dormant_ratio(hidden: tuple[jax.Array, ...], tau: float = 0.0) -> jax.Array:
    """Fraction of tau-dormant neurons over all hidden layers of all experts (ReDo, Sokar et al. 2023).

    Neuron i of a layer (one expert's layer, [T, d]) has score s_i = E_x|h_i(x)| / mean_k E_x|h_k(x)|; it is dormant
    when s_i <= tau. tau = 0 (the ReDo code's default) counts neurons that are zero on the whole probe batch.
    """
    dormant, total = 0.0, 0
    for h in hidden:  # [T, E, d]
        activity = jnp.mean(jnp.abs(h), axis=0)  # [E, d]
        score = activity / (jnp.mean(activity, axis=-1, keepdims=True) + 1e-9)
        dormant = dormant + jnp.sum(score <= tau)
        total += activity.size
    return dormant / total


def routed_weights(out: ActorOutput) -> jax.Array:
    """Routing distribution over the routed experts [B, E_routed], rows summing to 1. DS-MoE's always-on shared
    experts are dropped; a dense actor is one expert with weight 1."""
    routed = out.weights[:, -out.logits.shape[-1]:]
    return routed / jnp.sum(routed, axis=-1, keepdims=True)


def routing_load(weights: jax.Array) -> jax.Array:
    """Fraction of the total routing weight each expert receives: mean over rows of weights [B, E] -> [E], sums to 1."""
    return jnp.mean(weights, axis=0)


def selection_load(weights: jax.Array) -> jax.Array:
    """Fraction of all (state, selected expert) pairs that go to each expert ([B, E] -> [E], sums to 1); for Top-K
    routing, the expert's share of the B*K selections."""
    selected = (weights > 0).astype(weights.dtype)
    return jnp.sum(selected, axis=0) / jnp.sum(selected)


def distribution_entropy(p: jax.Array) -> jax.Array:
    """Entropy (nats) of one distribution p [E]."""
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def spectral_diagnostics(
    actor: Actor,
    actor_params: PyTree,
    probe_obs: jax.Array,
    *,
    entk_states: int | None = None,
    entk_block_size: int = 1,
    dormant_tau: float = 0.0,
) -> dict[str, jax.Array]:
    """All diagnostics of one seed's actor on a fixed probe batch [B, obs] (what the actor sees: normalized), as
    scalars with stable keys. The eNTK uses the first `entk_states` probe states (all when None; its cost grows as
    states^2 x actions x parameters), built `entk_block_size` states at a time (memory: that many x actions x
    parameters floats).

    entk_rank              effective rank of the eNTK of the action mean ([B*A, B*A])
    gram_rank              effective rank of SPHERE's weighted expert-feature Gram A (last hidden layer)
    feature_rank_l{i}      hidden layer i: mean over experts of the effective rank of the expert's feature Gram
    dormant_ratio          fraction of tau-dormant neurons over all hidden layers of all experts (ReDo)
    probe_routing_entropy  mean over probe states of the routing entropy (nats; 0 for a dense actor)
    load_entropy           entropy of the per-expert weight load (log E_routed = perfectly balanced)
    routing_load_e{i}      fraction of routing weight on routed expert i
    routing_select_e{i}    fraction of the (state, selected expert) pairs that pick routed expert i

    A dense actor is one expert with weight 1: its routing keys are routing_load_e0 = routing_select_e0 = 1 and zero
    entropies; gram_rank equals its last-layer feature rank. DS-MoE's loads cover the routed experts only (shared
    experts are always on); its feature ranks and dormant ratio cover shared and routed experts.
    """
    out = actor.apply(actor_params, probe_obs)
    routed = routed_weights(out)
    load = routing_load(routed)
    select = selection_load(routed)
    mean_fn = lambda params, obs: actor.apply(params, obs).mean  # noqa: E731
    # The ranks' eigendecompositions run one after another (see `after`): each one's input waits for the previous
    # rank.
    ranks = {"entk_rank": entk_effective_rank(mean_fn, actor_params, probe_obs[:entk_states], entk_block_size)}
    ranks["gram_rank"] = weighted_feature_rank(after(out.features, ranks["entk_rank"]), out.weights)
    previous = ranks["gram_rank"]
    for i, h in enumerate(out.hidden):
        previous = ranks[f"feature_rank_l{i}"] = layer_feature_rank(after(h, previous))
    diagnostics = {
        **ranks,
        "dormant_ratio": dormant_ratio(out.hidden, dormant_tau),
        "probe_routing_entropy": routing_entropy(routed),
        "load_entropy": distribution_entropy(load),
        **{f"routing_load_e{i}": load[i] for i in range(load.shape[0])},
        **{f"routing_select_e{i}": select[i] for i in range(select.shape[0])},
    }
    return {name: jnp.asarray(value, jnp.float32) for name, value in diagnostics.items()}
