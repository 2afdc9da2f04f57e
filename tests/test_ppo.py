"""PPO pieces against plain-Python references and hand-computed numbers."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxsphere import ppo as ppo_lib
from purejaxsphere import sphere
from purejaxsphere.config import PPOConfig, SphereConfig
from purejaxsphere.networks import Actor, gaussian_log_prob


def gae_loop(rewards, values, dones, last_value, gamma, lam):
    """Textbook GAE, one env, plain Python."""
    t_max = len(rewards)
    advantages = [0.0] * t_max
    next_adv, next_value = 0.0, last_value
    for t in reversed(range(t_max)):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return np.array(advantages)


def test_gae_matches_python_loop():
    rng = np.random.default_rng(0)
    t_max, n = 13, 4
    rewards, values = rng.normal(size=(t_max, n)), rng.normal(size=(t_max, n))
    dones = (rng.random((t_max, n)) < 0.2).astype(np.float64)
    last = rng.normal(size=n)
    adv, targets = ppo_lib.compute_gae(
        jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones), jnp.asarray(last), 0.99, 0.95
    )
    for env in range(n):
        expected = gae_loop(rewards[:, env], values[:, env], dones[:, env], last[env], 0.99, 0.95)
        np.testing.assert_allclose(adv[:, env], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(targets, np.asarray(adv) + values, rtol=1e-5, atol=1e-6)


def test_clipped_surrogate_hand_computed():
    new = jnp.log(jnp.array([1.5, 0.5, 1.1, 0.9]))
    old = jnp.zeros(4)
    adv = jnp.array([1.0, 1.0, -1.0, -1.0])
    loss, clip_fraction, approx_kl = ppo_lib.clipped_surrogate(new, old, adv, 0.2)
    # min(r A, clip(r) A): 1.2, 0.5, -1.1, -0.9 -> mean -0.075 -> loss 0.075
    assert float(loss) == pytest.approx(0.075, abs=1e-6)
    assert float(clip_fraction) == pytest.approx(0.5)
    # (r - 1) - log r: 0.094535, 0.193147, 0.004690, 0.005361
    assert float(approx_kl) == pytest.approx(0.0744332, abs=1e-6)
    assert float(ppo_lib.value_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))) == pytest.approx(2.5)


def test_gaussian_log_prob_matches_scipy():
    from scipy.stats import norm

    mean, log_std, action = np.array([[0.3, -1.0]]), np.array([0.2, -0.5]), np.array([[1.0, -0.7]])
    expected = norm.logpdf(action, mean, np.exp(log_std)).sum()
    got = gaussian_log_prob(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(action))
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)


def test_adaptive_learning_rate_rule():
    lr = jnp.asarray(3e-4)
    assert float(ppo_lib.adapt_learning_rate(lr, jnp.asarray(0.07), 0.03)) == pytest.approx(2e-4)
    assert float(ppo_lib.adapt_learning_rate(lr, jnp.asarray(0.01), 0.03)) == pytest.approx(4.5e-4)
    assert float(ppo_lib.adapt_learning_rate(lr, jnp.asarray(0.03), 0.03)) == pytest.approx(3e-4)
    assert float(ppo_lib.adapt_learning_rate(jnp.asarray(1.2e-5), jnp.asarray(1.0), 0.03)) == pytest.approx(1e-5)
    assert float(ppo_lib.adapt_learning_rate(jnp.asarray(9e-3), jnp.asarray(0.0), 0.03)) == pytest.approx(1e-2)


def test_linear_learning_rate_then_constant():
    cfg = PPOConfig(learning_rate=3e-4, final_learning_rate=1e-4, decay_fraction=0.5)
    values = [float(ppo_lib.linear_learning_rate(cfg, jnp.asarray(p))) for p in (0.0, 0.25, 0.5, 0.9)]
    np.testing.assert_allclose(values, [3e-4, 2e-4, 1e-4, 1e-4], rtol=1e-5)


@pytest.fixture(scope="module")
def actor_batch():
    actor = Actor(2, kind="moe_topk", hidden_sizes=(8, 8), gate_hidden_sizes=(8,), n_experts=4, top_k=2)
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (32, 5))
    params = actor.init(key, obs)
    batch = ppo_lib.Batch(
        obs=obs,
        action=jax.random.normal(jax.random.PRNGKey(1), (32, 2)),
        log_prob=jnp.full((32,), -2.0),
        advantage=jax.random.normal(jax.random.PRNGKey(2), (32,)),
        target=jnp.zeros(32),
    )
    return actor, params, batch


def test_loss_mode_gradient_is_gradient_of_penalised_loss(actor_batch):
    actor, params, batch = actor_batch
    ppo, sph = PPOConfig(ent_coef=0.01), SphereConfig(mode="loss", ratio=0.05)
    grads, diag = ppo_lib.actor_gradient(params, actor.apply, batch, ppo, sph)

    def total(p):
        (pi, s, _), _ = ppo_lib.actor_objectives(p, actor.apply, batch, ppo, sph)
        return pi + sphere.adaptive_coefficient(0.05, pi, s) * s

    expected = jax.grad(total)(params)
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7)
    (pi, s, _), _ = ppo_lib.actor_objectives(params, actor.apply, batch, ppo, sph)
    assert float(diag["sphere_coef"] * diag["sphere_loss"]) == pytest.approx(0.05 * abs(float(pi)), rel=1e-4)


def test_grad_mode_adds_ratio_of_policy_gradient_norm(actor_batch):
    actor, params, batch = actor_batch
    ppo = PPOConfig()
    off, _ = ppo_lib.actor_gradient(params, actor.apply, batch, ppo, SphereConfig(mode="off"))
    grad, _ = ppo_lib.actor_gradient(params, actor.apply, batch, ppo, SphereConfig(mode="grad", ratio=0.001))
    added = jax.tree.map(jnp.subtract, grad, off)
    assert float(sphere.global_norm(added)) == pytest.approx(0.001 * float(sphere.global_norm(off)), rel=1e-3)


def test_minibatch_update_early_stop_masks_update(actor_batch):
    from purejaxsphere.networks import Critic

    actor, params, batch = actor_batch
    critic = Critic((8,))
    critic_params = critic.init(jax.random.PRNGKey(5), batch.obs)
    ppo = PPOConfig(lr_schedule="early_stop", target_kl=1e-9)  # any KL exceeds it
    optimizer = ppo_lib.make_optimizer(ppo)
    learner = ppo_lib.Learner(params, critic_params, optimizer.init(params), optimizer.init(critic_params),
                              jnp.asarray(3e-4))
    state = ppo_lib.UpdateState(learner, jnp.zeros((), bool))
    # the stored log-probs (-2) differ from the policy's, so approx_kl > 0 > 1.5 * target
    new, diag = ppo_lib.minibatch_update(
        state, batch, actor_apply=actor.apply, critic_apply=critic.apply, optimizer=optimizer, ppo=ppo,
        sphere_cfg=SphereConfig(),
    )
    assert bool(new.stopped) and float(diag["update_applied"]) == 0.0
    for a, b in zip(jax.tree.leaves(new.learner.actor_params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    ppo = PPOConfig(lr_schedule="adaptive")
    new, diag = ppo_lib.minibatch_update(
        state, batch, actor_apply=actor.apply, critic_apply=critic.apply, optimizer=optimizer, ppo=ppo,
        sphere_cfg=SphereConfig(),
    )
    leaves = zip(jax.tree.leaves(new.learner.actor_params), jax.tree.leaves(params))
    changed = [not np.array_equal(a, b) for a, b in leaves]
    assert any(changed) and float(diag["update_applied"]) == 1.0
    assert float(new.learner.learning_rate) != pytest.approx(3e-4)  # adapted after the minibatch


def reference_gradient_parts(params, actor, batch, ppo, sph):
    """The official combination on flat float64 vectors (NumPy): returns (g_pi, the regularizer part without and
    with PCGrad). Each penalty is scaled by its loss-mode coefficient (ratio |L_pi| / L) or its grad-mode norm ratio
    (ratio |g_pi| / |g|); PCGrad removes the sum's component along g_pi when they conflict."""
    from jax.flatten_util import ravel_pytree

    def term(i):
        return lambda p: ppo_lib.actor_objectives(p, actor.apply, batch, ppo, sph)[0][i]

    values = [float(term(i)(params)) for i in range(3)]
    g_pi, g_s, g_g = (np.asarray(ravel_pytree(jax.grad(term(i))(params))[0], np.float64) for i in range(3))
    if sph.mode == "grad":
        coefs = [r * np.linalg.norm(g_pi) / np.linalg.norm(g) for r, g in ((sph.ratio, g_s), (sph.gating_ratio, g_g))]
    else:
        coefs = [r * abs(values[0]) / values[i] for i, r in ((1, sph.ratio), (2, sph.gating_ratio))]
    regularizer = coefs[0] * g_s + coefs[1] * g_g
    dot = regularizer @ g_pi
    projected = regularizer - dot / (g_pi @ g_pi) * g_pi if dot < 0 else regularizer
    return g_pi, regularizer, projected


# An advantage draw for which one sign of the advantages conflicts (<g_reg, g_pi> < 0) and the other does not.
@pytest.mark.parametrize("mode, ratio", [("loss", 0.05), ("grad", 0.001)])
def test_pcgrad_and_gating_penalty_match_the_official_combination(actor_batch, mode, ratio):
    """loss mode: PCGrad projects the regularizer part of the total gradient (SPHERE + gating) off g_pi. grad mode:
    the gating penalty gets its own scale gating_ratio |g_pi| / |g_G|, and PCGrad acts on the sum. The regularizer
    part is compared (to 1e-4 of its norm); where they conflict here the projection moves it by 5% (grad) and 29%
    (loss)."""
    from jax.flatten_util import ravel_pytree

    actor, params, batch = actor_batch
    batch = batch._replace(advantage=jax.random.normal(jax.random.PRNGKey(3), (32,)))
    ppo = PPOConfig(ent_coef=0.01)
    conflicts = []
    for b in (batch, batch._replace(advantage=-batch.advantage)):
        sph = SphereConfig(mode=mode, ratio=ratio, gating_ratio=0.01)
        g_pi, regularizer, projected = reference_gradient_parts(params, actor, b, ppo, sph)
        for pcgrad, expected in ((False, regularizer), (True, projected)):
            grads, _ = ppo_lib.actor_gradient(params, actor.apply, b, ppo, dataclasses.replace(sph, pcgrad=pcgrad))
            got = np.asarray(ravel_pytree(grads)[0], np.float64) - g_pi
            assert np.linalg.norm(got - expected) <= 1e-4 * np.linalg.norm(expected), (pcgrad, mode)
        moved = np.linalg.norm(projected - regularizer)
        assert moved == 0 or moved > 1e-2 * np.linalg.norm(regularizer)  # far above the tolerance
        conflicts.append(moved > 0)
    assert sorted(conflicts) == [False, True]  # both branches of PCGrad were exercised


def test_grad_mode_gating_part_has_gating_ratio_of_policy_gradient_norm(actor_batch):
    actor, params, batch = actor_batch
    ppo = PPOConfig()
    off, _ = ppo_lib.actor_gradient(params, actor.apply, batch, ppo, SphereConfig(mode="off"))
    gated, diag = ppo_lib.actor_gradient(
        params, actor.apply, batch, ppo, SphereConfig(mode="grad", ratio=0.0, gating_ratio=0.01)
    )
    added = jax.tree.map(jnp.subtract, gated, off)
    assert float(sphere.global_norm(added)) == pytest.approx(0.01 * float(sphere.global_norm(off)), rel=1e-3)
    assert float(diag["gating_coef"]) > 0 and float(diag["sphere_coef"]) == 0.0
