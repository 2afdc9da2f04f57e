"""Physics blow-ups are reset and counted per env, not propagated (envs.core.AutoResetWrapper, physics_unstable)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from envs import registry
from envs.core import State, physics_unstable, training_env
from envs.cpu import CpuPhysics
from envs.testing import PointMass

EXPLODE_AT = 3  # the step (1-based) at which a fused env blows up


def exploding_env(episode_length: int = 20, blowup: str = "nan", p_fuse: float = 0.5) -> PointMass:
    """The shared test point mass (envs.testing), whose fused envs blow up at step EXPLODE_AT."""
    return PointMass(episode_length, blowup=blowup, p_fuse=p_fuse, explode_at=EXPLODE_AT)


def rollout_fn(env) -> Callable[[State, jax.Array], list[State]]:
    """A compiled rollout of the vmapped env: (state [N], actions [T, N, A]) -> the T states after each step."""

    @jax.jit
    def steps(state: State, actions: jax.Array) -> State:
        def body(s: State, a: jax.Array) -> tuple[State, State]:
            s = jax.vmap(env.step)(s, a)
            return s, s

        return jax.lax.scan(body, state, actions)[1]

    def run(state: State, actions: jax.Array) -> list[State]:
        out = steps(state, actions)
        return [jax.tree.map(lambda x, t=t: x[t], out) for t in range(actions.shape[0])]

    return run


def env_slice(state: State, index: int) -> list[np.ndarray]:
    return [np.asarray(leaf[index]) for leaf in jax.tree.leaves(state)]


def test_physics_unstable_reads_python_scalar_leaves():
    """Brax's inverted_pendulum returns a physics state with a Python float leaf after a step."""
    obs = jnp.zeros(3)
    calm = State({"q": jnp.ones(2), "scale": 1.0}, obs, jnp.zeros(()), jnp.zeros(()), {})
    assert not bool(physics_unstable(calm))
    nan_scale = State({"q": jnp.ones(2), "scale": float("nan")}, obs, jnp.zeros(()), jnp.zeros(()), {})
    assert bool(physics_unstable(nan_scale))


@pytest.mark.parametrize("mode", ["nan", "huge", "hidden_inf"])
def test_blown_up_env_is_reset_and_counted_others_untouched(mode):
    env = training_env(exploding_env(blowup=mode, p_fuse=0.0))
    n_envs, bad = 4, 1
    clean = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), n_envs))
    physics = clean.pipeline_state
    fused = clean.replace(pipeline_state={**physics, "fuse": physics["fuse"].at[bad].set(1.0)})
    actions = jax.random.uniform(jax.random.PRNGKey(1), (6, n_envs, 2), minval=-1.0, maxval=1.0)
    rollout = rollout_fn(env)
    clean_states, fused_states = rollout(clean, actions), rollout(fused, actions)

    for a, b in zip(clean_states, fused_states):
        for i in set(range(n_envs)) - {bad}:  # the other envs: bit-identical to the run without a blow-up
            for x, y in zip(env_slice(a, i), env_slice(b, i)):
                np.testing.assert_array_equal(x, y)
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(b))  # nothing non-finite gets out
        np.testing.assert_array_equal(a.info["physics_resets"], 0)  # no false alarms on the clean run
    boom, before = fused_states[EXPLODE_AT - 1], fused_states[EXPLODE_AT - 2]
    assert (boom.done[bad], boom.reward[bad], boom.info["truncation"][bad], boom.info["final_success"][bad]) == (
        1.0, 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(boom.info["final_obs"][bad], before.obs[bad])  # the last stable observation
    np.testing.assert_array_equal(boom.info["final_return"][bad], before.info["episode_return"][bad])
    assert boom.info["steps"][bad] == 0 and boom.pipeline_state["t"][bad] == 0  # a fresh episode
    np.testing.assert_array_equal(fused_states[-1].info["physics_resets"], [0, 1, 0, 0])


def test_cpu_backend_reports_mujoco_blowups_as_nan(monkeypatch, tmp_path):
    """C MuJoCo resets a blown-up MjData to qpos0 by itself; CpuPhysics reports that step's state as NaN instead, so
    physics_unstable sees it (and AutoResetWrapper resets and counts it) as on MJX."""
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the warning to MUJOCO_LOG.TXT in the working directory
    xml = '<mujoco><worldbody><body><joint type="slide"/><geom size="0.1"/></body></worldbody></mujoco>'
    model = mujoco.MjModel.from_xml_string(xml)
    physics = CpuPhysics(model, n_substeps=2, outputs={"x": (1,)}, extract=lambda m, d: {"x": d.qpos[:1]},
                         num_threads=1)
    qvel = np.array([[1.0], [1e11]])  # env 1 is past MuJoCo's limit (1e10): mj_checkVel resets it
    state = physics.init_state(qpos=np.zeros((2, 1)), qvel=qvel, qacc_warmstart=np.zeros((2, 1)))
    new, _ = jax.jit(jax.vmap(physics.step))(state, {"ctrl": jnp.zeros((2, 0))})
    assert np.all(np.isfinite(new["qpos"][0])) and np.all(np.isnan(new["qpos"][1])) and np.all(np.isnan(new["qvel"][1]))
    flags = [bool(physics_unstable(State({k: v[i] for k, v in new.items()}, jnp.zeros(1), 0.0, 0.0))) for i in (0, 1)]
    assert flags == [False, True]


def test_training_continues_through_blow_ups(monkeypatch):
    from purejaxsphere import load_config, make_train

    monkeypatch.setitem(registry._REGISTRY, PointMass.name, exploding_env)  # registered for this test only
    cfg = load_config(
        f"tasks=[{PointMass.name}]", "seeds=[0,1]", "num_envs=4", "ppo.n_steps=8", "ppo.minibatch_size=16",
        "ppo.update_epochs=2", "network.hidden_sizes=[16]", "network.gate_hidden_sizes=[16]",
        "network.critic_hidden_sizes=[16]", "network.n_experts=3", "eval.interval=64", "eval.episodes=4",
        "episode_length=10", "total_timesteps=128",
    )
    result = make_train(cfg)()
    resets = np.asarray(result.state.env_state.info["physics_resets"])  # [seed, env]
    assert resets.sum() >= 10, resets  # about half the episodes blew up
    for leaf in jax.tree.leaves((result.state.actor_params, result.state.critic_params, result.state.obs_stats)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    for row in result.metrics:
        for key in ("policy_loss", "value_loss", "train_return", "eval_return", "eval_success"):
            assert np.isfinite(row[key]), (key, row)
    assert np.all(np.isfinite(result.eval_return[0, 0]))
