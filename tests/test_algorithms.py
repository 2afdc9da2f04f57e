"""Algorithms as configs: SPHERE ablations and plasticity baselines, each against an independent reference on a
tiny fixed batch, plus one tiny training run per algorithm config."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY as TRAIN_TINY
from flax.traverse_util import flatten_dict

from envs.testing import PointMass
from purejaxsphere import load_config, make_train, plasticity, sphere
from purejaxsphere import ppo as ppo_lib
from purejaxsphere.config import ConfigError
from purejaxsphere.networks import Actor, Critic, actor_hidden_activations
from purejaxsphere.programs import Networks, inherit, init_train_state

GRADIENT_ALGOS = [
    "moe_topk_sphere_all_layers",
    "moe_topk_sphere_per_expert",
    "moe_topk_sphere_grad_factor",
    "moe_topk_gating",
    "moe_topk_l2_init",
    "moe_topk_parseval",
]
NEW_ALGOS = GRADIENT_ALGOS + ["moe_topk_shrink_perturb", "moe_topk_redo"]
OBS, ACT, T = 5, 2, 32


def closed_form(phi: np.ndarray) -> float:
    """||A - (Tr A / D) I||_F^2 with A = phi^T phi / T, float64 NumPy."""
    t, d = phi.shape
    a = phi.T @ phi / t
    return float(np.sum((a - np.trace(a) / d * np.eye(d)) ** 2))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def tree_sub(a, b):
    return jax.tree.map(jnp.subtract, a, b)


@pytest.fixture(scope="module")
def setup():
    actor = Actor(ACT, kind="moe_topk", hidden_sizes=(8, 8), gate_hidden_sizes=(8,), n_experts=4, top_k=2)
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (T, OBS))
    params = actor.init(key, obs)
    reference = actor.init(jax.random.PRNGKey(7), obs)  # an L2-init theta_0 different from theta
    batch = ppo_lib.Batch(
        obs=obs,
        action=jax.random.normal(jax.random.PRNGKey(1), (T, ACT)),
        log_prob=jnp.full((T,), -2.0),
        advantage=jax.random.normal(jax.random.PRNGKey(2), (T,)),
        target=jnp.zeros(T),
    )
    configs = {name: load_config(f"algo={name}") for name in ["moe_topk", "moe_topk_sphere_gradscale", *NEW_ALGOS]}
    return SimpleNamespace(actor=actor, params=params, reference=reference, batch=batch, configs=configs)


def gradient(setup, name):
    cfg = setup.configs[name]
    return ppo_lib.actor_gradient(
        setup.params, setup.actor.apply, setup.batch, cfg.ppo, cfg.sphere, cfg.plasticity, setup.reference
    )


@pytest.fixture(scope="module")
def base_gradient(setup):
    return gradient(setup, "moe_topk")[0]


@pytest.mark.parametrize("name", GRADIENT_ALGOS)
def test_finite_loss_and_a_different_gradient_from_top_k_moe(setup, base_gradient, name):
    grads, diag = gradient(setup, name)
    for key in ("policy_loss", "sphere_loss", "gating_loss", "param_penalty"):
        assert np.isfinite(float(diag[key])), key
    assert all(np.isfinite(g).all() for g in leaves(grads))
    difference = float(sphere.global_norm(tree_sub(grads, base_gradient)))
    assert difference > 1e-4 * float(sphere.global_norm(base_gradient))


@pytest.mark.parametrize("name", GRADIENT_ALGOS[:3])
def test_ablation_adds_its_own_direction_at_the_sphere_ratio(setup, base_gradient, name):
    # Same grad-scale mode as SPHERE: the added part has 0.001 x the policy-gradient norm (up to the 1e-8 floor of
    # the ratio rule) but points elsewhere than SPHERE's.
    grads, _ = gradient(setup, name)
    sphere_grads, _ = gradient(setup, "moe_topk_sphere_gradscale")
    added, sphere_added = tree_sub(grads, base_gradient), tree_sub(sphere_grads, base_gradient)
    base_norm, added_norm = float(sphere.global_norm(base_gradient)), float(sphere.global_norm(added))
    assert 0 < added_norm <= 0.001 * base_norm * 1.001
    cosine = float(sphere.tree_dot(added, sphere_added)) / (added_norm * float(sphere.global_norm(sphere_added)))
    assert cosine < 0.999


def expert_outputs(setup):
    out = setup.actor.apply(setup.params, setup.batch.obs)
    head = setup.params["params"]["experts"]["w_out"]
    return out, head


def test_all_layers_and_per_expert_penalties_match_numpy(setup):
    out, head = expert_outputs(setup)
    w = np.asarray(out.weights, np.float64)
    hidden = [np.asarray(h, np.float64) for h in out.hidden]
    all_layers = sum(closed_form((h * w[..., None]).reshape(T, -1)) for h in hidden)
    per_expert = sum(closed_form(hidden[-1][:, e] * w[:, e, None]) for e in range(w.shape[1]))
    got_all = float(sphere.feature_penalty("all_layers", out.hidden, out.weights, head))
    got_per = float(sphere.feature_penalty("per_expert", out.hidden, out.weights, head))
    assert got_all == pytest.approx(all_layers, rel=1e-4)
    assert got_per == pytest.approx(per_expert, rel=1e-4)
    last = float(sphere.feature_penalty("last_layer", out.hidden, out.weights, head))
    assert last == pytest.approx(closed_form((hidden[-1] * w[..., None]).reshape(T, -1)), rel=1e-4)


def test_gradient_factor_is_the_jacobian_of_the_mean_wrt_last_preactivation(setup):
    out, head = expert_outputs(setup)
    bias = setup.params["params"]["experts"]["b_out"]
    h = out.hidden[-1]
    z = jnp.where(h > 0, h, -1.0)  # a pre-activation with the same ReLU pattern (relu' = 0 wherever h = 0)

    def mean(z):
        per_expert = jnp.einsum("ted,eda->tea", jax.nn.relu(z), head) + bias
        return jnp.einsum("te,tea->ta", out.weights, per_expert)

    jac = jax.jacfwd(mean)(z)  # [T, A, T, E, d]
    diagonal = jnp.stack([jac[t, :, t] for t in range(T)])  # d mean(x_t) / d z(x_t): [T, A, E, d]
    expected = np.asarray(diagonal).reshape(T * ACT, -1)
    factor = sphere.gradient_factor(h, out.weights, head)
    np.testing.assert_allclose(factor, expected, rtol=1e-5, atol=1e-9)
    got = float(sphere.feature_penalty("grad_factor", out.hidden, out.weights, head))
    assert got == pytest.approx(closed_form(expected.astype(np.float64)), rel=1e-3)


def test_l2_init_gradient_is_coef_times_distance_to_theta0(setup, base_gradient):
    grads, diag = gradient(setup, "moe_topk_l2_init")
    coef = setup.configs["moe_topk_l2_init"].plasticity.l2_init
    params, reference = leaves(setup.params), leaves(setup.reference)
    for added, p, r in zip(leaves(tree_sub(grads, base_gradient)), params, reference):
        np.testing.assert_allclose(added, coef * (p - r), rtol=1e-4, atol=1e-7)
    expected = 0.5 * coef * sum(np.sum((p.astype(np.float64) - r) ** 2) for p, r in zip(params, reference))
    assert float(diag["param_penalty"]) == pytest.approx(expected, rel=1e-5)


def test_parseval_gradient_closed_form_on_hidden_kernels_only(setup, base_gradient):
    grads, diag = gradient(setup, "moe_topk_parseval")
    coef = setup.configs["moe_topk_parseval"].plasticity.parseval
    added = flatten_dict(tree_sub(grads, base_gradient)["params"], sep="/")
    params = flatten_dict(setup.params["params"], sep="/")
    hidden_kernels = ("experts/w0", "experts/w1", "gate/Dense_0/kernel")  # not the heads w_out, gate/Dense_1
    value = 0.0
    for name, leaf in added.items():
        if name in hidden_kernels:
            kernel = np.asarray(params[name], np.float64)  # [E, in, d] or [in, d]
            width = kernel.shape[-1]
            deviation = np.swapaxes(kernel, -1, -2) @ kernel - 2.0 * np.eye(width)
            scale = coef * (64 / width) ** 2
            np.testing.assert_allclose(leaf, scale * 4 * kernel @ deviation, rtol=1e-4, atol=1e-6)
            value += scale * np.sum(deviation**2)
        else:  # biases, output heads, log-std: untouched by Parseval
            np.testing.assert_allclose(leaf, 0.0, atol=1e-7, err_msg=name)
    assert float(diag["param_penalty"]) == pytest.approx(value, rel=1e-4)


def test_parseval_is_zero_for_scaled_orthogonal_rows():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 8)))  # orthonormal columns: 8 units in 16 dims
    kernel = jnp.asarray(np.sqrt(2.0) * q, jnp.float32)
    assert float(plasticity.parseval_layer_penalty(kernel)) == pytest.approx(0.0, abs=1e-8)
    assert float(plasticity.parseval_layer_penalty(kernel * 1.1)) > 0


# -- Shrink & Perturb at a task boundary -----------------------------------------------------------------------------


def tiny_state(cfg, seed):
    actor = Actor(ACT, kind="moe_topk", hidden_sizes=(8,), gate_hidden_sizes=(8,), n_experts=3, top_k=2)
    nets = Networks(actor, Critic((8,)), ppo_lib.make_optimizer(cfg.ppo))
    return nets, init_train_state(jax.random.PRNGKey(seed), PointMass(action_size=ACT, observation_size=OBS), nets, cfg)


def trained_looking(nets, state):
    """Move params and optimizer states away from their initial values, as a finished task would."""
    noise = lambda tree, seed: jax.tree.map(  # noqa: E731
        lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(seed), x.shape), tree
    )
    actor_params, critic_params = noise(state.actor_params, 1), noise(state.critic_params, 2)
    _, actor_opt = nets.optimizer.update(noise(state.actor_params, 3), state.actor_opt_state, actor_params)
    _, critic_opt = nets.optimizer.update(noise(state.critic_params, 4), state.critic_opt_state, critic_params)
    return state.replace(learner=state.learner._replace(
        actor_params=actor_params, critic_params=critic_params, actor_opt_state=actor_opt, critic_opt_state=critic_opt
    ))


@pytest.mark.parametrize("protocol", ["crl", "rl"])
def test_shrink_perturb_moves_only_the_carried_actor(protocol):
    cfg = load_config("algo=moe_topk_shrink_perturb", f"protocol={protocol}")
    shrink, perturb = cfg.plasticity.shrink, cfg.plasticity.perturb
    nets, first = tiny_state(cfg, 0)
    previous = trained_looking(nets, first)
    _, fresh = tiny_state(cfg, 1)
    start = inherit(previous, fresh, cfg)
    if protocol == "rl":  # nothing carried, nothing to shrink
        for got, want in zip(leaves(start), leaves(fresh)):
            np.testing.assert_array_equal(got, want)
        return
    for got, theta, noise in zip(leaves(start.actor_params), leaves(previous.actor_params), leaves(fresh.actor_params)):
        np.testing.assert_allclose(got, np.float32(shrink) * theta + np.float32(perturb) * noise, rtol=1e-6, atol=1e-7)
    # Critic, optimizer states, normalizer and the L2-init reference are carried exactly as without Shrink & Perturb.
    plain = inherit(previous, fresh, load_config("algo=moe_topk"))
    for field in ("critic_params", "actor_opt_state", "critic_opt_state", "obs_stats", "actor_init_params"):
        for got, want in zip(leaves(getattr(start, field)), leaves(getattr(plain, field))):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(leaves(start.actor_init_params), leaves(first.actor_init_params)):
        np.testing.assert_array_equal(got, want)  # theta_0 is the run's first initialization, not the task's
    for got, want in zip(leaves(start.env_state), leaves(fresh.env_state)):
        np.testing.assert_array_equal(got, want)


# -- ReDo ------------------------------------------------------------------------------------------------------------


def numpy_hidden(params, obs):
    """Hidden activations of the tiny actor in float64 NumPy: expert layers [B, E, d] and the gate layer [B, d]."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params["params"])
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    x = np.asarray(obs, np.float64)
    h0 = relu(np.einsum("bi,eio->beo", x, p["experts"]["w0"]) + p["experts"]["b0"])
    h1 = relu(np.einsum("bei,eio->beo", h0, p["experts"]["w1"]) + p["experts"]["b1"])
    g0 = relu(x @ p["gate"]["Dense_0"]["kernel"] + p["gate"]["Dense_0"]["bias"])
    return h0, h1, g0


def numpy_dormant(h, tau):
    score = np.abs(h).mean(axis=0)
    score = score / (score.mean(axis=-1, keepdims=True) + 1e-9)
    return score <= tau


def test_redo_recycles_exactly_the_dormant_units(setup):
    actor, obs, tau = setup.actor, setup.batch.obs, 0.025
    params = jax.tree.map(jnp.array, setup.params)
    experts, gate = params["params"]["experts"], params["params"]["gate"]
    experts["b0"] = experts["b0"].at[1, 3].set(-100.0)  # expert 1, layer 0, unit 3: never active
    experts["b1"] = experts["b1"].at[2, 5].set(-100.0)  # expert 2, layer 1, unit 5
    gate["Dense_0"]["bias"] = gate["Dense_0"]["bias"].at[2].set(-100.0)  # gate trunk unit 2
    optimizer = ppo_lib.make_optimizer(setup.configs["moe_topk"].ppo)
    opt_state = optimizer.init(params)
    for seed in range(2):  # non-zero Adam moments
        grads = jax.tree.map(lambda x, seed=seed: jax.random.normal(jax.random.PRNGKey(seed), x.shape), params)
        _, opt_state = optimizer.update(grads, opt_state, params)
    key = jax.random.PRNGKey(11)

    new_params, new_opt, fraction = plasticity.recycle_dormant(actor, optimizer, params, opt_state, obs, key, tau)

    h0, h1, g0 = numpy_hidden(params, obs)
    d0, d1, dg = numpy_dormant(h0, tau), numpy_dormant(h1, tau), numpy_dormant(g0, tau)
    assert d0[1, 3] and d1[2, 5] and dg[2]
    fresh = jax.tree.map(np.asarray, actor.init(key, obs[:1])["params"])
    old = jax.tree.map(np.asarray, params["params"])
    expected = jax.tree.map(np.copy, old)
    reset = jax.tree.map(lambda x: np.zeros(x.shape, bool), old)
    e, g = expected["experts"], expected["gate"]

    def recycle(w_in, b_in, w_next, fresh_w, fresh_b, dead, mask_in, mask_b, mask_next):
        # incoming columns and biases <- fresh init, then outgoing rows <- 0
        cols = dead[..., None, :] & np.ones(w_in.shape, bool)
        w_in[cols] = fresh_w[cols]
        b_in[dead] = fresh_b[dead]
        rows = dead[..., :, None] & np.ones(w_next.shape, bool)
        w_next[rows] = 0.0
        mask_in |= cols
        mask_b |= dead
        mask_next |= rows

    r = reset
    recycle(e["w0"], e["b0"], e["w1"], fresh["experts"]["w0"], fresh["experts"]["b0"], d0,
            r["experts"]["w0"], r["experts"]["b0"], r["experts"]["w1"])
    recycle(e["w1"], e["b1"], e["w_out"], fresh["experts"]["w1"], fresh["experts"]["b1"], d1,
            r["experts"]["w1"], r["experts"]["b1"], r["experts"]["w_out"])
    recycle(g["Dense_0"]["kernel"], g["Dense_0"]["bias"], g["Dense_1"]["kernel"], fresh["gate"]["Dense_0"]["kernel"],
            fresh["gate"]["Dense_0"]["bias"], dg, r["gate"]["Dense_0"]["kernel"], r["gate"]["Dense_0"]["bias"],
            r["gate"]["Dense_1"]["kernel"])
    # e["w1"] was recycled as layer 0's outgoing before layer 1's incoming: zero must win where both apply.
    e["w1"][np.broadcast_to(d0[..., :, None], e["w1"].shape)] = 0.0

    for got, want in zip(leaves(new_params["params"]), leaves(expected)):
        np.testing.assert_array_equal(got, want)  # recycled entries as specified, every other entry bit-identical
    adam = new_opt[1]
    for moments, old_moments in ((adam.mu, opt_state[1].mu), (adam.nu, opt_state[1].nu)):
        for got, was, mask in zip(leaves(moments["params"]), leaves(old_moments["params"]), leaves(reset)):
            np.testing.assert_array_equal(got, np.where(mask, 0.0, was))
    np.testing.assert_array_equal(adam.count, opt_state[1].count)
    total = d0.size + d1.size + dg.size
    assert float(fraction) == pytest.approx((d0.sum() + d1.sum() + dg.sum()) / total)
    # The recycled actor still runs, and the hidden activations it reports line up with the NumPy forward pass.
    for got, want in zip(actor_hidden_activations(actor, params, obs), (h0, h1, g0)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# -- Config schema ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,message",
    [
        ("sphere.target=everything", "sphere.target"),
        ("plasticity.l2_init=-0.1", "plasticity.l2_init"),
        ("plasticity.parseval=-1", "plasticity.parseval"),
        ("plasticity.shrink=1.5", "plasticity.shrink"),
        ("plasticity.perturb=-0.01", "plasticity.perturb"),
        ("plasticity.redo_interval=-1", "plasticity.redo_interval"),
        ("plasticity.redo_tau=-0.5", "plasticity.redo_tau"),
    ],
)
def test_bad_algorithm_values_raise_config_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(override)


# -- Every new algorithm trains from one override --------------------------------------------------------------------

TINY = [*TRAIN_TINY, "tasks=[brax/reacher]", "seeds=1", "total_timesteps=64"]  # no diagnostics: compile time


@pytest.fixture(scope="module")
def tiny_start():
    """The initial state every algorithm's chunk program starts from: initialization does not depend on the
    algorithm (asserted per algorithm), so it is built once."""
    cfg = load_config(*TINY)
    return cfg, make_train(cfg).start_task(0, None)


def run_algo(name, tiny_start):
    """One compiled chunk (2 PPO updates) of algorithm `name`; evaluation is not what is tested here."""
    base, start = tiny_start
    extra = ["plasticity.redo_interval=1"] if name == "moe_topk_redo" else []  # recycle inside the 2 updates
    cfg = load_config(*TINY, f"algo={name}", *extra)
    assert (cfg.network, cfg.ppo, cfg.num_envs, cfg.tasks) == (base.network, base.ppo, base.num_envs, base.tasks)
    trainer = make_train(cfg)
    chunk, _ = trainer.compiled_chunk(0, start)
    state, summary = chunk(start, trainer.chunk_updates(0))
    return cfg, state, {key: float(value[0]) for key, value in jax.device_get(summary).items()}


# Two in CI (ReDo changes the compiled update itself; the gradient-factor target is the most involved penalty);
# the rest under -m slow: each compiles its own chunk program (~1 min of CPU each on 2 cores).
IN_CI = ("moe_topk_redo", "moe_topk_sphere_grad_factor")


@pytest.mark.parametrize(
    "name", [n if n in IN_CI else pytest.param(n, marks=pytest.mark.slow) for n in NEW_ALGOS]
)
def test_algo_trains_from_one_override(tiny_start, name):
    cfg, state, row = run_algo(name, tiny_start)
    assert cfg.algo == name
    for key in ("policy_loss", "value_loss", "sphere_loss", "gating_loss", "param_penalty", "approx_kl"):
        assert np.isfinite(row[key]), key
    assert all(np.isfinite(x).all() for x in leaves(state.actor_params))
    assert int(state.update_step[0]) == 2
    if cfg.sphere.mode != "off":
        assert row["sphere_coef"] > 0
    if cfg.sphere.gating_ratio > 0:
        assert row["gating_loss"] > 0
    if plasticity.uses_param_penalty(cfg.plasticity):
        assert row["param_penalty"] > 0
    else:
        assert row["param_penalty"] == 0
    if cfg.plasticity.redo_interval > 0:
        assert 0 <= row["redo_recycled_fraction"] <= 1
