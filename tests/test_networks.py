"""Actors: Top-K routing, expert mixture against a per-expert reference, variants' shapes and weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxsphere.networks import Actor, Critic, top_k_weights

OBS, ACT, B = 7, 3, 16


def make(kind, **kwargs):
    actor = Actor(ACT, kind=kind, hidden_sizes=(8, 6), gate_hidden_sizes=(5,), n_experts=5, top_k=2, **kwargs)
    obs = jax.random.normal(jax.random.PRNGKey(0), (B, OBS))
    params = actor.init(jax.random.PRNGKey(1), obs)
    return actor, params, obs


def test_top_k_weights_k_nonzero_summing_to_one():
    logits = jax.random.normal(jax.random.PRNGKey(0), (50, 10))
    for k in (1, 2, 4):
        w = np.asarray(top_k_weights(logits, k, temperature=0.7))
        assert ((w > 0).sum(axis=1) == k).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
        # the non-zero weights sit on the k largest logits
        top = np.argsort(-np.asarray(logits), axis=1)[:, :k]
        assert all(set(np.nonzero(w[i])[0]) == set(top[i]) for i in range(50))


def test_top_k_softmax_over_selected_with_temperature():
    logits = jnp.array([[1.0, 3.0, 2.0, -1.0]])
    w = np.asarray(top_k_weights(logits, 2, temperature=0.5))[0]
    e = np.exp(np.array([3.0, 2.0]) / 0.5)
    np.testing.assert_allclose(w[[1, 2]], e / e.sum(), rtol=1e-6)
    assert w[0] == 0 and w[3] == 0


def test_gradient_reaches_only_selected_logits():
    logits = jax.random.normal(jax.random.PRNGKey(3), (8, 6))
    target = jax.random.normal(jax.random.PRNGKey(4), (8, 6))
    grad = np.asarray(jax.grad(lambda l: jnp.sum(top_k_weights(l, 2, 1.0) * target))(logits))
    selected = np.asarray(top_k_weights(logits, 2, 1.0)) > 0
    assert np.all(grad[~selected] == 0.0)
    assert np.all(np.abs(grad[selected]) > 0)


def test_moe_mean_equals_weighted_sum_of_separate_experts():
    actor, params, obs = make("moe_topk")
    out = actor.apply(params, obs)
    p = params["params"]["experts"]
    means = []
    for e in range(5):  # each expert run alone as a plain MLP from its slice of the stacked weights
        h = obs
        for i in range(2):
            h = np.maximum(h @ np.asarray(p[f"w{i}"][e]) + np.asarray(p[f"b{i}"][e]), 0)
        means.append(h @ np.asarray(p["w_out"][e]) + np.asarray(p["b_out"][e]))
    expected = np.einsum("be,eba->ba", np.asarray(out.weights), np.stack(means))
    np.testing.assert_allclose(out.mean, expected, rtol=1e-4, atol=1e-6)
    assert out.features.shape == (B, 5, 6) and len(out.hidden) == 2 and out.hidden[0].shape == (B, 5, 8)
    assert ((np.asarray(out.weights) > 0).sum(1) == 2).all()
    assert out.log_std.shape == (ACT,) and np.all(np.asarray(out.log_std) == 0)


def test_unselected_experts_get_no_gradient():
    actor, params, obs = make("moe_topk")

    def loss(expert_params):
        full = {"params": {**params["params"], "experts": expert_params}}
        return jnp.sum(actor.apply(full, obs[:1]).mean)

    grads = jax.grad(loss)(params["params"]["experts"])
    selected = np.asarray(actor.apply(params, obs[:1]).weights[0]) > 0
    head_grad_norm = np.abs(np.asarray(grads["w_out"])).sum(axis=(1, 2))
    assert np.all(head_grad_norm[~selected] == 0) and np.all(head_grad_norm[selected] > 0)


def test_variants():
    actor, params, obs = make("dense_moe")
    w = np.asarray(actor.apply(params, obs).weights)
    assert (w > 0).all() and np.allclose(w.sum(1), 1, rtol=1e-6)
    actor, params, obs = make("ds_moe", n_shared=2)
    out = actor.apply(params, obs)
    w = np.asarray(out.weights)
    assert w.shape == (B, 7) and out.features.shape == (B, 7, 6)
    np.testing.assert_allclose(w[:, :2], 1 / 3, rtol=1e-6)  # shared experts always on
    assert ((w[:, 2:] > 0).sum(1) == 2).all() and np.allclose(w.sum(1), 1, rtol=1e-6)
    actor, params, obs = make("dense")
    out = actor.apply(params, obs)
    assert out.weights.shape == (B, 1) and out.features.shape == (B, 1, 6) and out.mean.shape == (B, ACT)
    with pytest.raises(ValueError, match="unknown actor kind"):
        make("nope")


def test_critic_shape():
    critic = Critic((8, 8))
    obs = jnp.ones((4, OBS))
    assert critic.apply(critic.init(jax.random.PRNGKey(0), obs), obs).shape == (4,)
