"""SPHERE penalty against its closed form, finite differences and its two computation paths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxsphere import sphere

jax.config.update("jax_enable_x64", False)


def closed_form(phi: np.ndarray) -> float:
    """||A - (Tr A / D) I||_F^2 with A = phi^T phi / T, in float64 NumPy."""
    t, d = phi.shape
    a = phi.T @ phi / t
    return float(np.sum((a - np.trace(a) / d * np.eye(d)) ** 2))


@pytest.mark.parametrize("t,d", [(16, 5), (8, 24), (64, 64)])
def test_penalty_matches_closed_form(t, d):
    phi = np.random.default_rng(t * d).normal(size=(t, d))
    got = float(sphere.sphere_penalty(jnp.asarray(phi, jnp.float32)))
    assert got == pytest.approx(closed_form(phi), rel=2e-4)


def test_kernel_and_gram_paths_agree():
    phi = jnp.asarray(np.random.default_rng(0).normal(size=(12, 40)), jnp.float32)
    gram = sphere.sphere_penalty(phi, path="gram")
    kernel = sphere.sphere_penalty(phi, path="kernel")
    assert float(gram) == pytest.approx(float(kernel), rel=1e-4)
    # "auto" takes the T x T kernel when D > T.
    assert float(sphere.sphere_penalty(phi)) == pytest.approx(float(kernel), rel=1e-6)


def test_zero_for_orthonormal_scaled_columns():
    # Phi = c * Q with orthonormal columns: A = c^2 Q^T Q / T = (c^2 / T) I, a multiple of the identity.
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(32, 8)))
    phi = jnp.asarray(3.0 * q, jnp.float32)
    assert abs(float(sphere.sphere_penalty(phi))) < 1e-5
    # ... while a non-isotropic Phi is penalised.
    assert float(sphere.sphere_penalty(phi * jnp.arange(1.0, 9.0))) > 1e-2


@pytest.mark.parametrize("path", ["gram", "kernel"])
def test_gradient_matches_finite_differences(path):
    rng = np.random.default_rng(2)
    phi = rng.normal(size=(6, 4))
    jax.config.update("jax_enable_x64", True)
    try:
        grad = np.asarray(jax.grad(lambda x: sphere.sphere_penalty(x, path=path))(jnp.asarray(phi, jnp.float64)))
    finally:
        jax.config.update("jax_enable_x64", False)
    eps = 1e-6
    numeric = np.zeros_like(phi)
    for index in np.ndindex(phi.shape):
        plus, minus = phi.copy(), phi.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (closed_form(plus) - closed_form(minus)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_weighted_expert_features_layout():
    features = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)
    weights = jnp.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    phi = sphere.weighted_expert_features(features, weights)
    assert phi.shape == (2, 12)
    np.testing.assert_allclose(phi[0, :4], 0.5 * features[0, 0])
    np.testing.assert_allclose(phi[0, 4:8], 0.0)
    np.testing.assert_allclose(phi[1, 4:8], features[1, 1])


def test_gating_isotropy_closed_form():
    p = np.random.default_rng(3).dirichlet(np.ones(5), size=20)
    g = p.T @ p / 20
    expected = (np.sum(g**2) - np.trace(g) ** 2 / 5) / 5
    assert float(sphere.gating_isotropy_penalty(jnp.asarray(p, jnp.float32))) == pytest.approx(expected, rel=1e-4)


def test_adaptive_coefficient_weighs_ratio_of_policy_loss():
    coef = sphere.adaptive_coefficient(0.05, jnp.asarray(-2.0), jnp.asarray(4.0))
    assert float(coef * 4.0) == pytest.approx(0.05 * 2.0, rel=1e-5)
    assert jax.grad(lambda p: sphere.adaptive_coefficient(0.05, p, jnp.asarray(1.0)))(jnp.asarray(1.0)) == 0.0


def test_norm_ratio_scale_and_pcgrad_hand_computed():
    policy = {"w": jnp.array([3.0, 4.0])}  # norm 5
    penalty = {"w": jnp.array([-10.0, 0.0])}  # norm 10
    scale = sphere.norm_ratio_scale(0.1, policy, penalty)
    assert float(scale) == pytest.approx(0.05, rel=1e-6)  # 0.1 x 5 / 10: the added part has norm 0.1 x 5
    scaled = sphere.tree_scale(penalty, scale)
    np.testing.assert_allclose(sphere.add_regularizer(policy, scaled)["w"], [2.5, 4.0], rtol=1e-6)
    # PCGrad: <[-0.5, 0], [3, 4]> = -1.5 < 0, so remove -1.5 / 25 x [3, 4]: [-0.5, 0] + [0.18, 0.24]
    projected = sphere.add_regularizer(policy, scaled, pcgrad=True)
    np.testing.assert_allclose(projected["w"], [3.0 - 0.32, 4.0 + 0.24], rtol=1e-6)
    assert float(jnp.dot(projected["w"] - policy["w"], policy["w"])) == pytest.approx(0.0, abs=1e-6)
    # No conflict (positive inner product): PCGrad changes nothing; the policy gradient itself is never projected.
    agree = {"w": jnp.array([1.0, 0.0])}
    np.testing.assert_allclose(sphere.add_regularizer(policy, agree, pcgrad=True)["w"], [4.0, 4.0])
    # Vanishing gradients: the official norms are sqrt(sum of squares + 1e-8), so s = 0.1 x 1e-4 / (1e-4 + 1e-8).
    zero = {"w": jnp.zeros(2)}
    assert float(sphere.norm_ratio_scale(0.1, zero, zero)) == pytest.approx(0.1 * 1e-4 / (1e-4 + 1e-8), rel=1e-5)
    assert jax.grad(lambda x: sphere.norm_ratio_scale(0.1, {"w": x}, penalty))(policy["w"]).tolist() == [0.0, 0.0]
