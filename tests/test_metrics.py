"""Spectral diagnostics against closed forms, NumPy and the full Jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from purejaxsphere import metrics
from purejaxsphere.networks import Actor
from purejaxsphere.sphere import weighted_expert_features

KINDS = ["dense", "moe_topk", "dense_moe", "ds_moe"]
OBS, ACT, B = 5, 3, 4


def make(kind):
    actor = Actor(ACT, kind=kind, hidden_sizes=(8, 6), gate_hidden_sizes=(5,), n_experts=4, top_k=2)
    obs = jax.random.normal(jax.random.PRNGKey(0), (B, OBS))

    @jax.jit  # eager flax init runs op by op: slow on a busy CPU
    def init(key):
        params = actor.init(key, obs)
        # Heads start at scale 0.01; perturb every parameter so no term of the eNTK is negligible.
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
        return jax.tree.unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])

    return actor, init(jax.random.PRNGKey(1)), obs


def numpy_effective_rank(eigenvalues):
    p = np.asarray(eigenvalues, np.float64)
    p = p[p > 1e-12 * p.max()] / p[p > 1e-12 * p.max()].sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def test_effective_rank_closed_forms():
    assert float(metrics.effective_rank(jnp.full(7, 2.5))) == pytest.approx(7.0, rel=1e-5)
    assert float(metrics.effective_rank(jnp.array([4.0, 0.0, 0.0]))) == pytest.approx(1.0, rel=1e-6)
    # p = (3/4, 1/4): exp(-(0.75 log 0.75 + 0.25 log 0.25))
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert float(metrics.effective_rank(jnp.array([3.0, 1.0]))) == pytest.approx(expected, rel=1e-5)
    assert float(metrics.effective_rank(jnp.zeros(3))) == 0.0


def test_psd_effective_rank_isotropic_and_rank_one():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    isotropic = q @ (3.0 * np.eye(6)) @ q.T
    assert float(metrics.psd_effective_rank(jnp.asarray(isotropic, jnp.float32))) == pytest.approx(6.0, rel=1e-4)
    u = np.random.default_rng(1).normal(size=(9, 1))
    assert float(metrics.psd_effective_rank(jnp.asarray(u @ u.T, jnp.float32))) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("t,d", [(12, 5), (6, 20)])  # Gram path and T x T kernel path
def test_gram_effective_rank_matches_numpy(t, d):
    x = np.random.default_rng(t).normal(size=(t, d)) * np.linspace(0.2, 3.0, d)
    expected = numpy_effective_rank(np.linalg.eigvalsh(x.T @ x / t))
    assert float(metrics.gram_effective_rank(jnp.asarray(x, jnp.float32))) == pytest.approx(expected, rel=1e-4)


def test_weighted_feature_rank_is_rank_of_sphere_gram():
    rng = np.random.default_rng(3)
    features = jnp.asarray(np.abs(rng.normal(size=(10, 3, 4))), jnp.float32)
    weights = jnp.asarray(rng.dirichlet(np.ones(3), size=10), jnp.float32)
    phi = np.asarray(weighted_expert_features(features, weights), np.float64)
    expected = numpy_effective_rank(np.linalg.eigvalsh(phi.T @ phi / 10))
    assert float(metrics.weighted_feature_rank(features, weights)) == pytest.approx(expected, rel=1e-4)


def full_jacobian_entk(mean_fn, params, obs):
    flat, unravel = ravel_pytree(params)
    jac = jax.jit(jax.jacrev(lambda f: mean_fn(unravel(f), obs).reshape(-1)))(flat)  # [B*A, P]
    return np.asarray(jac, np.float64) @ np.asarray(jac, np.float64).T


@pytest.mark.parametrize("kind", KINDS)
def test_batched_entk_equals_full_jacobian(kind):
    actor, params, obs = make(kind)
    mean_fn = lambda p, x: actor.apply(p, x).mean  # noqa: E731
    expected = full_jacobian_entk(mean_fn, params, obs)
    assert expected.shape == (B * ACT, B * ACT) and np.abs(expected).max() > 1e-2
    # Two blocks of two states: rows within a block and blocks in sequence both land in the right place.
    got = np.asarray(jax.jit(metrics.entk, static_argnums=(0, 3))(mean_fn, params, obs, 2))
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


def test_entk_of_linear_model_closed_form():
    # mean[b, a] = x_b . W[:, a] + c[a]: d mean[b,a] / dW[i,a'] = x_b[i] delta(a,a'), so K = (x x^T + 1) kron I_A.
    x = np.random.default_rng(4).normal(size=(3, 4))
    params = {"w": jnp.zeros((4, 2)), "c": jnp.zeros(2)}
    mean_fn = lambda p, obs: obs @ p["w"] + p["c"]  # noqa: E731
    got = np.asarray(metrics.entk(mean_fn, params, jnp.asarray(x, jnp.float32), block_size=3))
    np.testing.assert_allclose(got, np.kron(x @ x.T + 1.0, np.eye(2)), rtol=1e-5, atol=1e-5)


def test_entk_rejects_block_size_not_dividing_batch():
    with pytest.raises(ValueError, match="multiple"):
        metrics.entk(lambda p, x: x * p, jnp.ones(()), jnp.ones((5, 2)), block_size=2)


def test_dormant_ratio_redo_definition():
    # One expert layer of 4 neurons over 2 states; mean |h| per neuron = (0, 0.1, 1.9, 2.0), layer mean 1.0.
    h = jnp.array([[0.0, 0.2, 1.8, 2.0], [0.0, 0.0, 2.0, 2.0]])[:, None, :]
    assert float(metrics.dormant_ratio((h,), tau=0.0)) == pytest.approx(1 / 4)  # only the silent neuron
    assert float(metrics.dormant_ratio((h,), tau=0.1)) == pytest.approx(2 / 4)  # score 0.1 <= 0.1
    # Layers are normalized separately: a second, uniformly active layer of 2 neurons adds no dormant neuron.
    other = jnp.ones((2, 1, 2))
    assert float(metrics.dormant_ratio((h, other), tau=0.1)) == pytest.approx(2 / 6)


def test_routing_load_selection_and_entropy():
    w = jnp.array([[0.75, 0.25, 0.0], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(metrics.routing_load(w), [0.375, 0.375, 0.25])
    np.testing.assert_allclose(metrics.selection_load(w), [0.25, 0.5, 0.25])
    assert float(metrics.distribution_entropy(jnp.full(4, 0.25))) == pytest.approx(np.log(4))


def test_routed_weights_drop_shared_experts():
    actor, params, obs = make("ds_moe")
    out = actor.apply(params, obs)
    assert out.weights.shape == (B, 5)  # 1 shared + 4 routed
    routed = np.asarray(metrics.routed_weights(out))
    np.testing.assert_allclose(routed, np.asarray(out.weights[:, 1:]) * 2.0, rtol=1e-6)
    assert ((routed > 0).sum(axis=1) == 2).all()


@pytest.mark.parametrize("kind", KINDS)
def test_spectral_diagnostics_every_actor_kind_jit_and_vmap(kind):
    actor, params, obs = make(kind)
    seeds = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x]), params)
    fn = jax.jit(jax.vmap(lambda p: metrics.spectral_diagnostics(actor, p, obs, entk_block_size=2)))
    out = {k: np.asarray(v) for k, v in fn(seeds).items()}
    n_routed = 1 if kind == "dense" else 4
    expected_keys = {"entk_rank", "gram_rank", "feature_rank_l0", "feature_rank_l1", "dormant_ratio",
                     "probe_routing_entropy", "load_entropy"}
    expected_keys |= {f"routing_load_e{i}" for i in range(n_routed)} | {f"routing_select_e{i}" for i in range(n_routed)}
    assert set(out) == expected_keys
    for key, value in out.items():
        assert value.shape == (2,) and np.isfinite(value).all(), key
    assert (out["entk_rank"] >= 1).all() and (out["entk_rank"] <= B * ACT).all()
    # Each key equals its function applied to seed 0 alone.
    mean_fn = lambda p, x: actor.apply(p, x).mean  # noqa: E731

    @jax.jit
    def references(p):
        single = actor.apply(p, obs)
        return (metrics.weighted_feature_rank(single.features, single.weights),
                metrics.entk_effective_rank(mean_fn, p, obs), metrics.entk_effective_rank(mean_fn, p, obs[:2]),
                metrics.spectral_diagnostics(actor, p, obs, entk_states=2)["entk_rank"])

    gram_rank, entk_rank, entk_rank_first_two, diagnostics_first_two = references(params)
    np.testing.assert_allclose(out["gram_rank"][0], gram_rank, rtol=1e-4)
    np.testing.assert_allclose(out["entk_rank"][0], entk_rank, rtol=1e-4)
    np.testing.assert_allclose(diagnostics_first_two, entk_rank_first_two, rtol=1e-4)
    loads = np.array([out[f"routing_load_e{i}"][0] for i in range(n_routed)])
    np.testing.assert_allclose(loads.sum(), 1.0, rtol=1e-5)
    if kind == "dense":
        assert out["routing_load_e0"][0] == 1.0 and out["probe_routing_entropy"][0] == 0.0
    else:
        assert out["probe_routing_entropy"][0] > 0.0


def _contains_eigh(eqn) -> bool:
    """Whether a jaxpr equation is, or holds in a sub-jaxpr (jit, vmap of jit, ...), an eigendecomposition."""
    if eqn.primitive.name == "eigh":
        return True
    return any(_contains_eigh(inner) for value in eqn.params.values() for jaxpr in _jaxprs_in(value)
               for inner in jaxpr.eqns)


def _jaxprs_in(value):
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # ClosedJaxpr
        yield value.jaxpr
    elif hasattr(value, "eqns"):  # Jaxpr
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _jaxprs_in(item)


def test_diagnostic_eigendecompositions_run_one_at_a_time():
    """Every eigendecomposition of spectral_diagnostics depends on the one before it, so XLA:CPU never runs two
    LAPACK calls at once (concurrent ones deadlocked jaxlib 0.10's intra-op thread pool: metrics.after)."""
    actor, params, obs = make("moe_topk")
    seeds = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x]), params)
    jaxpr = jax.make_jaxpr(jax.vmap(lambda p: metrics.spectral_diagnostics(actor, p, obs, entk_block_size=2)))(seeds)
    eqns = jaxpr.jaxpr.eqns
    producer = {id(var): i for i, eqn in enumerate(eqns) for var in eqn.outvars}
    ancestors: list[set] = []
    for eqn in eqns:
        found = set()
        for var in eqn.invars:
            if id(var) in producer:
                j = producer[id(var)]
                found |= {j} | ancestors[j]
        ancestors.append(found)
    calls = [i for i, eqn in enumerate(eqns) if _contains_eigh(eqn)]
    assert len(calls) == 4  # eNTK, SPHERE's Gram, two hidden layers
    for earlier, later in zip(calls, calls[1:]):
        assert earlier in ancestors[later], (eqns[earlier].primitive, eqns[later].primitive)
