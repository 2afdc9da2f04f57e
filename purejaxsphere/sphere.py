"""SPHERE: keep the routing-weighted expert-feature Gram matrix close to a multiple of the identity.

Given per-expert last-hidden features h_e(x) (shape [T, E, d]) and sparse routing weights g(x) (shape [T, E]),
phi(x) = concat_e g_e(x) h_e(x) in R^D, D = E*d. Over a minibatch Phi in R^(T x D):
    A = Phi^T Phi / T,   L_SPHERE = ||A||_F^2 - Tr(A)^2 / D = ||A - (Tr(A)/D) I||_F^2.
When D > T the same value comes from the T x T kernel K = Phi Phi^T / T (same non-zero spectrum and trace).
"""

from __future__ import annotations

from typing import Any, Literal

import chex
import jax
import jax.numpy as jnp

PyTree = Any


def weighted_expert_features(features: jax.Array, weights: jax.Array) -> jax.Array:
    """[T, E, d] features x [T, E] routing weights -> [T, E*d] routing-weighted, expert-concatenated features."""
    chex.assert_rank(features, 3)
    chex.assert_rank(weights, 2)
    chex.assert_equal_shape_prefix([features, weights], 2)
    t, e, d = features.shape
    return (features * weights[..., None]).reshape(t, e * d)


def isotropy_penalty(x: jax.Array, path: Literal["auto", "gram", "kernel"] = "auto") -> jax.Array:
    """||A||_F^2 - Tr(A)^2 / D for A = x^T x / T, x of shape [T, D]; zero iff A is a multiple of the identity.

    `path` picks the D x D Gram ("gram") or the T x T kernel ("kernel"); "auto" takes the smaller one.
    """
    chex.assert_rank(x, 2)
    t, d = x.shape
    if path == "auto":
        path = "kernel" if d > t else "gram"
    if path == "kernel":
        m = x @ x.T / t
    elif path == "gram":
        m = x.T @ x / t
    else:
        raise ValueError(f"unknown path {path!r}")
    trace = jnp.trace(m)
    return jnp.sum(m * m) - trace**2 / d


def sphere_penalty(phi: jax.Array, path: Literal["auto", "gram", "kernel"] = "auto") -> jax.Array:
    """The SPHERE loss ||A||_F^2 - Tr(A)^2 / D of weighted expert features phi [T, D], A = phi^T phi / T."""
    return isotropy_penalty(phi, path)


def gating_isotropy_penalty(weights: jax.Array) -> jax.Array:
    """Isotropy of the routing weights P [T, E]: (||G||_F^2 - Tr(G)^2 / E) / E with G = P^T P / T."""
    return isotropy_penalty(weights, "gram") / weights.shape[1]


def adaptive_coefficient(ratio: float | jax.Array, policy_loss: jax.Array, penalty: jax.Array) -> jax.Array:
    """"loss" mode: lambda = sg(ratio * |L_pi| / (L_SPHERE + 1e-8)), so lambda * L_SPHERE weighs ratio x |L_pi|."""
    return jax.lax.stop_gradient(ratio * jnp.abs(policy_loss) / (penalty + 1e-8))


def global_norm(tree: PyTree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def tree_dot(a: PyTree, b: PyTree) -> jax.Array:
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def combine_gradients(
    policy_grad: PyTree, penalty_grad: PyTree, ratio: float | jax.Array, pcgrad: bool = False
) -> tuple[PyTree, jax.Array]:
    """"grad" mode: rescale the penalty gradient to `ratio` x the policy gradient's global norm and add them.

    With `pcgrad`, the rescaled penalty gradient is first projected off the policy gradient when the two conflict
    (negative inner product). Returns the combined gradient and the scale applied to the penalty gradient.
    """
    policy_norm = global_norm(policy_grad)
    scale = ratio * policy_norm / (global_norm(penalty_grad) + 1e-8)
    scaled = jax.tree.map(lambda g: g * scale, penalty_grad)
    if pcgrad:
        dot = tree_dot(scaled, policy_grad)
        coef = jnp.where(dot < 0.0, dot / (policy_norm**2 + 1e-12), 0.0)
        scaled = jax.tree.map(lambda s, p: s - coef * p, scaled, policy_grad)
    return jax.tree.map(jnp.add, policy_grad, scaled), scale
