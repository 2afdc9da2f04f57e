"""SPHERE: keep the routing-weighted expert-feature Gram matrix close to a multiple of the identity.

Given per-expert last-hidden features h_e(x) (shape [T, E, d]) and sparse routing weights g(x) (shape [T, E]),
phi(x) = concat_e g_e(x) h_e(x) in R^D, D = E*d. Over a minibatch Phi in R^(T x D):
    A = Phi^T Phi / T,   L_SPHERE = ||A||_F^2 - Tr(A)^2 / D = ||A - (Tr(A)/D) I||_F^2.
When D > T the same value comes from the T x T kernel K = Phi Phi^T / T (same non-zero spectrum and trace).
The paper's ablations apply the same isotropy penalty to other matrices (`feature_penalty`: every hidden expert
layer, each expert alone, the layer's gradient factor); the gating-isotropy penalty applies it to the routing weights.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def per_expert_penalty(features: jax.Array, weights: jax.Array) -> jax.Array:
    """Ablation "sum of per-expert losses": sum_e L(g_e h_e), each expert's own weighted features [T, d] alone.

    The same blocks as SPHERE's phi, without the cross-expert blocks of A (and each block's trace normalised by d).
    """
    chex.assert_rank(features, 3)
    return jnp.sum(jax.vmap(isotropy_penalty, in_axes=1)(features * weights[..., None]))


def gradient_factor(features: jax.Array, weights: jax.Array, head_kernel: jax.Array) -> jax.Array:
    """Backpropagated gradient factor of the last hidden expert layer: d mean / d pre-activation.

    For mean(x) = sum_e g_e(x) (relu(z_e(x)) W_e + b_e), d mean_a / d z_{e,j} = g_e W_e[j, a] 1[z_{e,j} > 0].
    features [T, E, d] (post-ReLU, so h > 0 iff z > 0), weights [T, E], head_kernel [E, d, A] -> [T*A, E*d]: one row
    per (sample, action dimension), the K-FAC gradient factor of that layer with the policy mean as output.
    """
    chex.assert_rank([features, weights, head_kernel], [3, 2, 3])
    t, e, d = features.shape
    active = (features > 0).astype(features.dtype) * weights[..., None]
    return jnp.einsum("ted,eda->taed", active, head_kernel).reshape(t * head_kernel.shape[-1], e * d)


def feature_penalty(
    target: str, hidden: Sequence[jax.Array], weights: jax.Array, head_kernel: jax.Array
) -> jax.Array:
    """The SPHERE penalty on `target` (config.SPHERE_TARGETS), from the actor's per-layer expert features.

    - last_layer: L(phi) with phi the routing-weighted last-layer features (the paper's SPHERE)
    - all_layers: sum over hidden expert layers l of L(phi_l)
    - per_expert: sum over experts of L(g_e h_e) on the last layer
    - grad_factor: L of the last hidden layer's gradient factor (`gradient_factor`)
    """
    if target == "last_layer":
        return sphere_penalty(weighted_expert_features(hidden[-1], weights))
    if target == "all_layers":
        return sum(sphere_penalty(weighted_expert_features(h, weights)) for h in hidden)
    if target == "per_expert":
        return per_expert_penalty(hidden[-1], weights)
    if target == "grad_factor":
        return isotropy_penalty(gradient_factor(hidden[-1], weights, head_kernel))
    raise ValueError(f"unknown SPHERE target {target!r}")


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


def tree_scale(tree: PyTree, scale: jax.Array) -> PyTree:
    return jax.tree.map(lambda g: g * scale, tree)


def norm_ratio_scale(ratio: float | jax.Array, reference_grad: PyTree, grad: PyTree) -> jax.Array:
    """"grad" mode: s = sg(ratio * |g_ref| / (|g| + 1e-8)), so s * g has ratio x the reference gradient's norm.

    Both norms are sqrt(sum of squares + 1e-8), as the official `tree_l2_norm`.
    """
    reference_norm = jnp.sqrt(tree_dot(reference_grad, reference_grad) + 1e-8)
    norm = jnp.sqrt(tree_dot(grad, grad) + 1e-8)
    return jax.lax.stop_gradient(ratio * reference_norm / (norm + 1e-8))


def project_conflict(regularizer_grad: PyTree, base_grad: PyTree) -> PyTree:
    """PCGrad: when <g_reg, g_base> < 0, remove g_reg's component along g_base (g_reg - <g_reg, g_base> /
    (|g_base|^2 + 1e-8) g_base); otherwise g_reg unchanged. The base (policy) gradient itself is never altered."""
    dot = tree_dot(regularizer_grad, base_grad)
    coef = jnp.where(dot < 0.0, dot / (tree_dot(base_grad, base_grad) + 1e-8), 0.0)
    return jax.tree.map(lambda r, b: r - coef * b, regularizer_grad, base_grad)


def add_regularizer(base_grad: PyTree, regularizer_grad: PyTree, pcgrad: bool = False) -> PyTree:
    """g_base + g_reg, with g_reg first PCGrad-projected off g_base when `pcgrad` (`project_conflict`)."""
    if pcgrad:
        regularizer_grad = project_conflict(regularizer_grad, base_grad)
    return jax.tree.map(jnp.add, base_grad, regularizer_grad)
