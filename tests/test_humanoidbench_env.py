"""HumanoidBench H1 tasks: protocol, resets, termination, success, pole collision discount (CPU backend)."""

from __future__ import annotations

import copy
import types

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs.core import training_env
from envs.humanoidbench import TASK_NAMES, get_spec, h1

BARS = {"h1_stand": 800, "h1_walk": 700, "h1_run": 700, "h1_pole": 700, "h1_slide": 700}


@pytest.fixture(scope="module")
def walk():
    return envs.make("humanoidbench/h1_walk", physics="cpu")


def test_registered_with_protocol_attributes():
    names = envs.list_tasks()
    for short in TASK_NAMES:
        assert f"humanoidbench/{short}" in names
    env = envs.make("humanoidbench/h1_pole", physics="cpu")
    assert isinstance(env, envs.core.Env)
    assert (env.observation_size, env.action_size, env.episode_length, env.has_success) == (51, 19, 1000, True)
    assert env.success_bar == 700
    with pytest.raises(ValueError):
        envs.make("humanoidbench/h1_walk", physics="gpu")
    for short, bar in BARS.items():
        assert get_spec(short).success_bar == bar


def test_model_is_humanoidbench_h1_pos(walk):
    m = walk.backend.mj_model
    assert (m.nq, m.nv, m.nu) == (26, 25, 19)
    assert m.opt.timestep == 0.002 and m.opt.iterations == 100 and m.opt.ls_iterations == 50
    assert m.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON
    np.testing.assert_allclose(m.key_qpos[0], [0, 0, 0.98, 1, 0, 0, 0] + [0, 0, -0.4, 0.8, -0.4] * 2 + [0] * 9)
    kp = {m.actuator(i).name: m.actuator_gainprm[i, 0] for i in range(m.nu)}
    assert kp["left_knee"] == 300 and kp["left_ankle"] == 40 and kp["torso"] == 300 and kp["right_elbow"] == 100
    np.testing.assert_allclose(m.actuator_ctrlrange[m.actuator("right_shoulder_yaw").id], [-4.45, 1.3])
    # 18 link meshes and the 2 hip-yaw cylinders collide in the untouched model (the CPU backend's)
    assert int(np.sum((m.geom_contype > 0) & (m.geom_bodyid > 0))) == 20


def test_action_maps_linearly_to_ctrlrange(walk):
    m = walk.backend.mj_model
    np.testing.assert_allclose(np.asarray(walk.action_to_ctrl(-jnp.ones(19))), m.actuator_ctrlrange[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(walk.action_to_ctrl(jnp.ones(19))), m.actuator_ctrlrange[:, 1], atol=1e-6)
    mid = m.actuator_ctrlrange.mean(axis=1)
    np.testing.assert_allclose(np.asarray(walk.action_to_ctrl(jnp.zeros(19))), mid, atol=1e-6)


def test_reset_noise_differs_per_key_and_averages_to_keyframe(walk):
    keys = jax.random.split(jax.random.PRNGKey(0), 512)
    states = jax.jit(jax.vmap(walk.reset))(keys)
    obs = np.asarray(states.obs)
    assert obs.shape == (512, 51)
    qpos, qvel = obs[:, :26], obs[:, 26:]
    key_qpos = walk.backend.mj_model.key_qpos[0]
    assert len({tuple(np.round(q, 7)) for q in qpos}) == 512  # different noise per key
    assert np.all(qvel == 0)
    non_quat = np.r_[0:3, 7:26]
    assert np.abs(qpos[:, non_quat] - key_qpos[non_quat]).max() <= 0.01 + 1e-6
    # U(-0.01, 0.01): std 0.0058, so the mean of 512 draws is within 0.0013 of the keyframe with ~5 sigma margin
    assert np.abs(qpos.mean(axis=0) - key_qpos).max() < 0.0013
    np.testing.assert_allclose(np.linalg.norm(qpos[:, 3:7], axis=1), 1.0, atol=1e-6)
    assert float(states.reward.sum()) == 0 and float(states.done.sum()) == 0
    assert set(walk.term_names) <= set(states.info) and float(states.info["success"].sum()) == 0
    again = np.asarray(jax.jit(walk.reset)(keys[3]).obs)
    np.testing.assert_array_equal(again, obs[3])


@pytest.mark.parametrize(
    "short,field,value,done",
    [
        ("h1_walk", "z", 0.19, 1), ("h1_walk", "z", 0.21, 0), ("h1_stand", "z", 0.19, 1), ("h1_run", "z", 0.3, 0),
        ("h1_pole", "z", 0.49, 1), ("h1_pole", "z", 0.51, 0), ("h1_slide", "zz", 0.09, 1),
        ("h1_slide", "zz", 0.11, 0), ("h1_slide", "z", 0.05, 0),
    ],
)
def test_termination_rules(short, field, value, done):
    q = {name: np.zeros(shape, np.float32) for name, shape in h1.QUANTITIES.items()}
    q["qpos"][2] = 1.0
    q["torso_zz"] = np.float32(1.0)
    if field == "z":
        q["qpos"][2] = value
    else:
        q["torso_zz"] = np.float32(value)
    assert bool(get_spec(short).terminated(q)) == bool(done)


def test_termination_in_rollouts_follows_base_height(walk):
    """Random actions topple the robot: `done` is set exactly at the steps where the base drops below 0.2 m."""
    n, steps = 8, 150
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    actions = jax.random.uniform(jax.random.PRNGKey(2), (steps, n, 19), minval=-1, maxval=1)

    @jax.jit
    def rollout(keys, actions):
        s = jax.vmap(walk.reset)(keys)

        def body(s, a):
            s = jax.vmap(walk.step)(s, a)
            return s, (s.obs[:, 2], s.done, s.reward)

        return jax.lax.scan(body, s, actions)[1]

    z, done, reward = (np.asarray(x) for x in rollout(keys, actions))
    np.testing.assert_array_equal(done, (z < 0.2).astype(np.float32))
    assert done.any(), "random actions should topple the robot within 150 steps"
    assert np.all(reward >= 0) and np.all(reward <= 1)


def test_success_once_return_reaches_bar(walk):
    state = walk.reset(jax.random.PRNGKey(0))
    step = jax.jit(walk.step)
    # the task tracks its own return: the flag is 1 exactly when the return so far reaches the bar
    near = state.replace(info={**state.info, "task_return": jnp.float32(walk.success_bar - 1e-3)})
    after = step(near, jnp.zeros(19))
    assert float(after.reward) > 1e-3 and float(after.info["success"]) == 1.0
    far = state.replace(info={**state.info, "task_return": jnp.float32(walk.success_bar - 1.5)})
    assert float(step(far, jnp.zeros(19)).info["success"]) == 0.0
    # along an episode: task_return is the running sum of rewards, and the episode wrappers see the flag
    env = training_env(walk)
    s = env.reset(jax.random.PRNGKey(3))
    total = 0.0
    for _ in range(5):
        s = jax.jit(env.step)(s, jnp.zeros(19))
        total += float(s.reward)
        assert float(s.info["task_return"]) == pytest.approx(total, rel=1e-5)
        assert float(s.info["episode_return"]) == pytest.approx(total, rel=1e-5)
    assert float(s.info["success"]) == 0.0


def test_gym_env(walk):
    g = walk.cpu()
    assert g.unwrapped.model.nq == 26 and isinstance(g.unwrapped.data, mujoco.MjData)
    obs, _ = g.reset(seed=0)
    obs2, _ = g.reset(seed=0)
    np.testing.assert_array_equal(obs, obs2)
    obs3, _ = g.reset(seed=1)
    assert np.abs(obs3 - obs).max() > 1e-4
    obs, reward, terminated, truncated, info = g.step(np.zeros(19))
    assert obs.shape == (51,) and 0 <= reward <= 1 and not terminated and not truncated
    assert set(info) == set(walk.term_names) | {"success"}


# ---------------------------------------------------------------------------------------------- pole discount
def _fake_data(pairs):
    pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
    return types.SimpleNamespace(ncon=len(pairs), contact=types.SimpleNamespace(geom=pairs))


def test_pole_contact_rule_ignores_the_floor():
    env = envs.make("humanoidbench/h1_pole", physics="cpu")
    layout = env.backend.layout
    m = env.backend.mj_model
    pole = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "pole_r3_c2")
    link = int(layout.robot_collision[5])
    assert h1.cpu_pole_contact(_fake_data([[0, pole]]), layout) == 0.0  # pole on the floor
    assert h1.cpu_pole_contact(_fake_data([[0, link], [link, 2]]), layout) == 0.0  # robot on the floor
    assert h1.cpu_pole_contact(_fake_data([[pole, link]]), layout) == 1.0
    assert h1.cpu_pole_contact(_fake_data([[0, link], [link, pole]]), layout) == 1.0
    assert int(layout.is_pole.sum()) == 144


@pytest.fixture(scope="module")
def pole_states():
    """(MjData copies after one step) standing on the floor clear of the poles, and standing against a pole."""
    env = envs.make("humanoidbench/h1_pole", physics="cpu")
    g = env.cpu()
    out = {}
    for label, xy in (("floor", None), ("pole", (1.0, 0.6))):
        g.reset(seed=0)
        if xy is not None:
            qpos = g.unwrapped.data.qpos.copy()
            qpos[:2] = xy
            g.unwrapped.set_state(qpos, np.zeros(25))
        _, reward, _, _, info = g.step(np.zeros(19))
        out[label] = (copy.copy(g.unwrapped.data), info, reward)
    return env, g.unwrapped.model, out


def test_pole_discount_triggers_on_pole_touch_not_floor_contact(pole_states):
    env, m, out = pole_states
    d_floor, info_floor, _ = out["floor"]
    assert d_floor.ncon > 0 and all(0 in pair for pair in d_floor.contact.geom)  # only floor contacts
    assert info_floor["collision_discount"] == 1.0
    d_pole, info_pole, reward = out["pole"]
    assert info_pole["collision_discount"] == pytest.approx(0.1)
    undiscounted = 0.5 * info_pole["small_control"] * info_pole["stand_reward"] + 0.5 * info_pole["move"]
    assert reward == pytest.approx(0.1 * undiscounted, rel=1e-5)


def test_mjx_pole_proxy_agrees_with_c_contacts(pole_states):
    """The MJX backend's geometric pole test (no robot-pole contacts in its physics) on C MuJoCo geom poses."""
    from envs.humanoidbench.h1 import MjxBackend
    from envs.humanoidbench.h1_pole import pole_touches

    env, m, out = pole_states
    backend = MjxBackend(get_spec("h1_pole"), 100, 50, 32)
    assert len(backend.layout.robot_collision) == len(env.backend.layout.robot_collision) == 20
    # the same geoms in the same order and frames
    cm = backend.mj_model
    ids_c = env.backend.layout.robot_collision
    np.testing.assert_allclose(cm.geom_pos[backend.layout.robot_collision], m.geom_pos[ids_c], atol=1e-9)
    np.testing.assert_allclose(cm.geom_quat[backend.layout.robot_collision], m.geom_quat[ids_c], atol=1e-9)
    for label, expected in (("floor", 0.0), ("pole", 1.0)):
        d = out[label][0]
        flag = pole_touches(
            backend.pole_bottom, backend.pole_top, backend.pole_radius,
            jnp.asarray(d.geom_xpos[ids_c]), jnp.asarray(d.geom_xmat[ids_c].reshape(-1, 3, 3)),
            backend.box_center, backend.box_half,
        )
        assert float(flag) == expected, label
    assert cm.ngeom == m.ngeom


def test_training_stack_nested_vmap_scan_on_cpu_backend(walk):
    """The trainer's use: wrappers (episodes, auto-reset), seeds x envs nested vmap, lax.scan, jit."""
    env = training_env(walk)
    seeds, n, steps = 2, 3, 40
    keys = jax.random.split(jax.random.PRNGKey(5), seeds * n).reshape(seeds, n, 2)
    reset = jax.vmap(jax.vmap(env.reset))

    @jax.jit
    def run(states, key):
        def body(s, k):
            a = jax.random.uniform(k, (seeds, n, 19), minval=-1, maxval=1)
            s = jax.vmap(jax.vmap(env.step))(s, a)
            return s, (s.done, s.info["steps"], s.obs[..., 2])

        return jax.lax.scan(body, states, jax.random.split(key, steps))

    final, (done, count, z) = run(reset(keys), jax.random.PRNGKey(6))
    done, count, z = np.asarray(done), np.asarray(count), np.asarray(z)
    assert done.shape == (steps, seeds, n)
    assert done.any()  # random actions topple some robots within 40 steps; they are reset
    # after a done step the env restarts: a fresh standing robot (base ~0.98 m) and a step counter of 0
    t, i, j = (x[0] for x in np.nonzero(done[:-1]))
    assert abs(z[t, i, j] - 0.98) < 0.011 and count[t, i, j] == 0 and count[t + 1, i, j] == 1
