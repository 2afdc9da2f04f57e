"""Actors: Top-K routing, expert mixture against a per-expert reference, variants' shapes and weights, and the
initialization of every network against flax's lecun_normal (scipy's truncated normal)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

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
    grad = np.asarray(jax.grad(lambda z: jnp.sum(top_k_weights(z, 2, 1.0) * target))(logits))
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


# Initialization (network.init). The reference is scipy's truncated normal: flax's lecun_normal draws from N(0, 1)
# truncated to [-2, 2], rescaled so the kernel's std is exactly 1/sqrt(fan_in); biases and log_std start at 0.
INIT_OBS, INIT_HIDDEN, INIT_GATE, INIT_EXPERTS = 51, (64, 48), (40,), 4
LINEAR_ALGEBRA = re.compile(r"\b(qr|householder_product|geqrf|orgqr|eigh|svd|cholesky|lu)\[")


def init_networks(kind: str, init: str) -> dict:
    """Parameters of one actor kind (or the critic, kind="critic") under the given network.init scheme."""
    obs = jnp.zeros((2, INIT_OBS))
    if kind == "critic":
        return Critic(INIT_HIDDEN, init_scheme=init).init(jax.random.PRNGKey(3), obs)
    actor = Actor(ACT + 3, kind=kind, hidden_sizes=INIT_HIDDEN, gate_hidden_sizes=INIT_GATE,
                  n_experts=INIT_EXPERTS, top_k=2, init_scheme=init)
    return actor.init(jax.random.PRNGKey(3), obs)


def kernels_and_biases(params: dict) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, np.ndarray]]:
    """{path: (kernel, fan_in)} and {path: bias or log_std}. Expert kernels are [E, in, out], Dense ones [in, out]."""
    kernels, others = {}, {}
    for path, value in flatten_dict(params["params"], sep="/").items():
        name, value = path.rsplit("/", 1)[-1], np.asarray(value)
        if name == "kernel" or (name.startswith("w") and value.ndim == 3):
            kernels[path] = (value, value.shape[-2])
        else:
            others[path] = value
    return kernels, others


def lecun_mismatches(params: dict) -> list[str]:
    """Layers whose kernel is not lecun_normal (KS test against scipy's truncated normal, std, bound), and
    biases / log_std that are not zero."""
    from scipy import stats

    unit = stats.truncnorm(-2.0, 2.0)
    reference = stats.truncnorm(-2.0, 2.0, scale=1.0 / unit.std())  # std exactly 1, bounds +-2 / unit.std()
    kernels, others = kernels_and_biases(params)
    bad = [path for path, value in others.items() if np.any(value != 0)]
    for path, (kernel, fan_in) in kernels.items():
        z = kernel.ravel() * np.sqrt(fan_in)  # lecun_normal: z has the reference distribution
        n = z.size
        if (
            stats.kstest(z, reference.cdf).pvalue < 1e-4
            or abs(z.std() - 1.0) > 5.0 / np.sqrt(2 * n)
            or np.abs(z).max() > 2.0 / unit.std() + 1e-5
        ):
            bad.append(f"{path} (fan_in {fan_in}, std x sqrt(fan_in) = {z.std():.3f})")
    return bad


@pytest.mark.parametrize("kind", ["dense", "moe_topk", "dense_moe", "ds_moe", "critic"])
def test_default_init_is_lecun_normal_with_zero_biases(kind):
    params = init_networks(kind, "lecun")
    kernels, _ = kernels_and_biases(params)
    n_layers = len(INIT_HIDDEN) + 1 + (len(INIT_GATE) + 1 if kind not in ("dense", "critic") else 0)
    assert len(kernels) == n_layers  # every layer checked: hidden layers and heads, experts and gate
    assert lecun_mismatches(params) == []
    assert Actor(ACT).init_scheme == "lecun" and Critic().init_scheme == "lecun"


@pytest.mark.parametrize("kind", ["dense", "moe_topk", "critic"])
def test_he_init_fails_the_lecun_check(kind):
    bad = lecun_mismatches(init_networks(kind, "he"))
    # He: every hidden layer has sqrt(2) x the std (the critic's head has gain 1 under both schemes)
    assert len(bad) >= len(INIT_HIDDEN), bad


def test_he_init_scales():
    kernels, _ = kernels_and_biases(init_networks("moe_topk", "he"))
    std = {path: float(k.std() * np.sqrt(fan_in)) for path, (k, fan_in) in kernels.items()}
    assert std["experts/w0"] == pytest.approx(np.sqrt(2), rel=0.05)
    assert std["experts/w_out"] == pytest.approx(0.01, rel=0.1)
    assert std["gate/Dense_1/kernel"] == pytest.approx(0.01, rel=0.25)


def test_init_needs_no_qr_batched_over_seeds():
    # Orthogonal init (a QR per matrix) batched over experts and seeds deadlocked XLA:CPU with jaxlib 0.10; the
    # trainer's init (vmapped over seeds) must contain no LAPACK decomposition. The detector sees one in orthogonal.
    actor = Actor(ACT, kind="moe_topk", hidden_sizes=(8, 6), gate_hidden_sizes=(5,), n_experts=5, top_k=2)
    keys, obs = jax.random.split(jax.random.PRNGKey(0), 3), jnp.zeros((1, OBS))
    for init in ("lecun", "he"):
        text = str(jax.make_jaxpr(jax.vmap(actor.clone(init_scheme=init).init, in_axes=(0, None)))(keys, obs))
        assert not LINEAR_ALGEBRA.search(text), init
    orthogonal = jax.make_jaxpr(jax.vmap(lambda k: nn.initializers.orthogonal()(k, (3, 5, 4))))(keys)
    assert LINEAR_ALGEBRA.search(str(orthogonal))
