"""Plasticity baselines applied to the actor, as pure functions of parameters and activations.

- L2-init (Kumar et al. 2023, "regenerative regularization"): (c/2) ||theta - theta_0||^2 over all actor parameters,
  theta_0 the parameters at the run's first step (their "time step 0"), so the gradient is c (theta - theta_0).
- Parseval (Chung et al. 2024): c sum_l (64/d_l)^2 ||W_l^T W_l - s I||_F^2 over the hidden weight matrices (each
  expert's separately; output heads excluded), s = 2 and the (64/width)^2 factor as in their official code
  (wechu/parseval_reg: s = init gain^2 = 2, coefficient tuned at width 64 and scaled by (64/width)^2).
- Shrink & Perturb (Ash & Adams 2020): theta <- shrink * theta + perturb * theta_fresh at a task boundary, with
  theta_fresh a fresh initialization (noise from the initialization distribution).
- ReDo (Sokar et al. 2023): a hidden unit is tau-dormant when its mean |activation| over a batch, divided by the mean
  of that over its layer, is <= tau; its incoming weights and bias are re-initialized, its outgoing weights set to 0,
  and the Adam moments of all those weights zeroed (as the official dopamine/labs/redo code does).

The gradient penalties enter `ppo.actor_gradient` through `param_penalty`; Shrink & Perturb runs in `train.inherit`;
ReDo runs inside the compiled update (`train.make_update_fn`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from purejaxsphere.config import PlasticityConfig
from purejaxsphere.networks import Actor, HiddenLayer, actor_hidden_activations, actor_hidden_layers, param_at

PyTree = Any

PARSEVAL_SCALE = 2.0  # s: Chung et al.'s (their init gain sqrt(2)); E[||row||^2] of a fresh matrix under init=he
PARSEVAL_REFERENCE_WIDTH = 64  # the width Chung et al. tuned the coefficient at


def l2_init_penalty(params: PyTree, reference: PyTree) -> jax.Array:
    """0.5 ||theta - theta_0||^2 over every leaf; its gradient is theta - theta_0."""
    return 0.5 * sum(jnp.sum(jnp.square(p - r)) for p, r in zip(jax.tree.leaves(params), jax.tree.leaves(reference)))


def parseval_layer_penalty(kernel: jax.Array) -> jax.Array:
    """(64/d)^2 ||K^T K - s I||_F^2 for a kernel [..., in, d] (summed over leading expert axes).

    K^T K is the Gram of the d units' incoming weight vectors (W W^T for a PyTorch-layout W = K^T).
    """
    width = kernel.shape[-1]
    gram = jnp.swapaxes(kernel, -1, -2) @ kernel
    deviation = gram - PARSEVAL_SCALE * jnp.eye(width, dtype=kernel.dtype)
    return (PARSEVAL_REFERENCE_WIDTH / width) ** 2 * jnp.sum(jnp.square(deviation))


def parseval_penalty(params: PyTree) -> jax.Array:
    """Sum of `parseval_layer_penalty` over the actor's hidden layers (experts and gate trunk)."""
    return sum(parseval_layer_penalty(param_at(params, layer.kernel)) for layer in actor_hidden_layers(params))


def uses_param_penalty(cfg: PlasticityConfig) -> bool:
    """Whether `param_penalty` is non-zero (a static choice: off costs nothing)."""
    return cfg.l2_init > 0 or cfg.parseval > 0


def param_penalty(params: PyTree, reference: PyTree, cfg: PlasticityConfig) -> jax.Array:
    """l2_init * `l2_init_penalty` + parseval * `parseval_penalty`, with only the enabled terms computed."""
    total = jnp.zeros((), jnp.float32)
    if cfg.l2_init > 0:
        total = total + cfg.l2_init * l2_init_penalty(params, reference)
    if cfg.parseval > 0:
        total = total + cfg.parseval * parseval_penalty(params)
    return total


def uses_shrink_perturb(cfg: PlasticityConfig) -> bool:
    return cfg.shrink != 1.0 or cfg.perturb != 0.0


def shrink_perturb(params: PyTree, fresh: PyTree, shrink: float, perturb: float) -> PyTree:
    """shrink * params + perturb * fresh, leaf by leaf."""
    return jax.tree.map(lambda p, f: shrink * p + perturb * f, params, fresh)


def dormant_units(activation: jax.Array, tau: float) -> jax.Array:
    """Boolean mask [..., d] of tau-dormant units of one layer from its activations [B, ..., d].

    score_i = mean_B |h_i| / (mean over the layer's d units of that + 1e-9); dormant when score_i <= tau. Expert
    layers ([B, E, d]) are scored per expert.
    """
    score = jnp.mean(jnp.abs(activation), axis=0)
    score = score / (jnp.mean(score, axis=-1, keepdims=True) + 1e-9)
    return score <= tau


def _set(tree: dict, path: tuple[str, ...], value: jax.Array) -> dict:
    """A copy of the nested dict `tree` with `value` at `path` (the other branches shared)."""
    head, *rest = path
    return {**tree, head: _set(tree[head], tuple(rest), value) if rest else value}


def recycle_masks(
    params: PyTree, layers: list[HiddenLayer], dormant: list[jax.Array]
) -> tuple[PyTree, PyTree]:
    """Parameter-shaped boolean trees: (incoming = kernel columns and biases of dormant units, outgoing = the next
    layer's kernel rows that read them)."""
    none = jax.tree.map(lambda x: jnp.zeros(x.shape, bool), params)
    incoming, outgoing = none, none
    for layer, dead in zip(layers, dormant):
        kernel_shape = param_at(params, layer.kernel).shape
        next_shape = param_at(params, layer.next_kernel).shape
        incoming = _set(incoming, ("params",) + layer.kernel, jnp.broadcast_to(dead[..., None, :], kernel_shape))
        incoming = _set(incoming, ("params",) + layer.bias, dead)
        outgoing = _set(outgoing, ("params",) + layer.next_kernel, jnp.broadcast_to(dead[..., :, None], next_shape))
    return incoming, outgoing


def recycle_dormant(
    actor: Actor,
    optimizer: optax.GradientTransformation,
    params: PyTree,
    opt_state: PyTree,
    obs: jax.Array,
    key: jax.Array,
    tau: float,
) -> tuple[PyTree, PyTree, jax.Array]:
    """ReDo on every hidden layer of the actor, scored on the observations `obs` [B, obs].

    Dormant units get the incoming weights and bias of a fresh initialization and zero outgoing weights (zero wins
    where a weight is both, as in the official code's order); the Adam moments of every recycled weight are zeroed,
    the step count is kept. Everything else is returned bit-identical. Returns (params, opt_state, fraction of hidden
    units recycled).
    """
    layers = actor_hidden_layers(params)
    dormant = [dormant_units(h, tau) for h in actor_hidden_activations(actor, params, obs)]
    incoming, outgoing = recycle_masks(params, layers, dormant)
    fresh = actor.init(key, obs[:1])
    params = jax.tree.map(
        lambda p, f, i, o: jnp.where(o, jnp.zeros_like(p), jnp.where(i, f, p)), params, fresh, incoming, outgoing
    )
    recycled = jax.tree.map(jnp.logical_or, incoming, outgoing)
    opt_state = optax.tree_map_params(
        optimizer, lambda m, r: jnp.where(r, jnp.zeros_like(m), m), opt_state, recycled,
        transform_non_params=lambda x: x,
    )
    fraction = sum(jnp.sum(d) for d in dormant) / sum(d.size for d in dormant)
    return params, opt_state, fraction

