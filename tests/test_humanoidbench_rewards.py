"""HumanoidBench reward terms: the JAX port against an independent NumPy evaluation of HumanoidBench's formulas.

States come from C MuJoCo rollouts (the untouched model); the NumPy side reads them through MuJoCo's named
accessors (site "head", body "torso_link", sensor "pelvis_subtreelinvel", contacts by geom name), not through the
port's extraction code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import envs
from envs.rewards import SIGMOIDS, tolerance

TASKS = ("h1_stand", "h1_walk", "h1_run", "h1_pole", "h1_slide")


# ---------------------------------------------------------------------------------------------- NumPy reference
def np_tolerance(x, bounds=(0.0, 0.0), margin=0.0, sigmoid="gaussian", value_at_margin=0.1):
    """dm_control.utils.rewards.tolerance, written out in NumPy from its documented definition."""
    lo, hi = bounds
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return _np_tolerance(x, lo, hi, margin, sigmoid, value_at_margin)


def _np_tolerance(x, lo, hi, margin, sigmoid, value_at_margin):
    inside = (lo <= x) & (x <= hi)
    if margin == 0:
        return np.where(inside, 1.0, 0.0)
    d = np.where(x < lo, lo - x, x - hi) / margin
    v = value_at_margin
    if sigmoid == "gaussian":
        s = np.exp(-0.5 * (d * np.sqrt(-2 * np.log(v))) ** 2)
    elif sigmoid == "hyperbolic":
        s = 1 / np.cosh(d * np.arccosh(1 / v))
    elif sigmoid == "long_tail":
        s = 1 / ((d * np.sqrt(1 / v - 1)) ** 2 + 1)
    elif sigmoid == "reciprocal":
        s = 1 / (np.abs(d) * (1 / v - 1) + 1)
    elif sigmoid == "cosine":
        z = d * np.arccos(2 * v - 1) / np.pi
        s = np.where(np.abs(z) < 1, (1 + np.cos(np.pi * z)) / 2, 0.0)
    elif sigmoid == "linear":
        z = d * (1 - v)
        s = np.where(np.abs(z) < 1, 1 - z, 0.0)
    elif sigmoid == "quadratic":
        z = d * np.sqrt(1 - v)
        s = np.where(np.abs(z) < 1, 1 - z * z, 0.0)
    elif sigmoid == "tanh_squared":
        s = 1 - np.tanh(d * np.arctanh(np.sqrt(1 - v))) ** 2
    else:
        raise ValueError(sigmoid)
    return np.where(inside, 1.0, s)


def np_terms(task: str, m: mujoco.MjModel, d: mujoco.MjData) -> tuple[float, dict]:
    """HumanoidBench's reward for `task` at MjData `d` (after mj_step), in NumPy."""
    head_z = d.site("head").xpos[2]
    zz = d.body("torso_link").xmat[8]
    force = d.actuator_force.copy()
    com_v = d.sensor("pelvis_subtreelinvel").data.copy()
    small_control = (4 + np_tolerance(force, margin=10, value_at_margin=0, sigmoid="quadratic").mean()) / 5
    inf = float("inf")

    def move(speed):
        return (5 * np_tolerance(com_v[0], (speed, inf), speed, "linear", 0) + 1) / 6

    if task == "h1_slide":
        lf, rf = d.site("left_foot").xpos[2], d.site("right_foot").xpos[2]
        standing = np_tolerance(head_z - lf, (1.2, inf), 0.45) * np_tolerance(head_z - rf, (1.2, inf), 0.45)
        upright = np_tolerance(zz, (0.5, inf), 1.9, "linear", 0)
        t = dict(standing=standing, upright=upright, stand_reward=standing * upright, small_control=small_control,
                 move=move(1.0))
        return t["stand_reward"] * small_control * t["move"], t
    standing = np_tolerance(head_z, (1.65, inf), 1.65 / 4)
    upright = np_tolerance(zz, (0.9, inf), 1.9, "linear", 0)
    t = dict(standing=standing, upright=upright, stand_reward=standing * upright, small_control=small_control)
    if task == "h1_stand":
        t["dont_move"] = np_tolerance(com_v[:2], margin=2).mean()
        return small_control * t["stand_reward"] * t["dont_move"], t
    if task == "h1_pole":
        t["move"] = move(0.5)
        touch = False
        for g1, g2 in d.contact.geom[: d.ncon]:
            names = [m.geom(int(g)).name for g in (g1, g2)]
            if any("pole_r" in n for n in names) and 0 not in (g1, g2):
                touch = True
        t["collision_discount"] = 0.1 if touch else 1.0
        return (0.5 * small_control * t["stand_reward"] + 0.5 * t["move"]) * t["collision_discount"], t
    t["move"] = move({"h1_walk": 1.0, "h1_run": 5.0}[task])
    return small_control * t["stand_reward"] * t["move"], t


# ---------------------------------------------------------------------------------------------- tolerance
@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_tolerance_matches_numpy_and_closed_form(sigmoid):
    x = np.linspace(-3, 4, 141)
    v = 0.1 if sigmoid not in ("linear", "quadratic", "cosine") else 0.0
    for bounds, margin in (((0.0, 1.0), 1.5), ((0.5, math.inf), 0.7), ((0.0, 0.0), 2.0), ((0.0, 1.0), 0.0)):
        got = np.asarray(tolerance(jnp.asarray(x), bounds=bounds, margin=margin, sigmoid=sigmoid, value_at_margin=v))
        np.testing.assert_allclose(got, np_tolerance(x, bounds, margin, sigmoid, v), atol=2e-6)
        assert np.all(got[(x >= bounds[0]) & (x <= bounds[1])] == 1.0)
    for vm in (0.1, 0.5) if sigmoid not in ("linear", "quadratic", "cosine") else (0.0, 0.3):
        at_margin = tolerance(jnp.asarray([-2.0, 3.0]), bounds=(0.0, 1.0), margin=2.0, sigmoid=sigmoid,
                              value_at_margin=vm)
        np.testing.assert_allclose(np.asarray(at_margin), [vm, vm], atol=1e-6)


def test_tolerance_rejects_bad_arguments():
    with pytest.raises(ValueError):
        tolerance(jnp.zeros(2), bounds=(1.0, 0.0))
    with pytest.raises(ValueError):
        tolerance(jnp.zeros(2), margin=-1.0)
    with pytest.raises(ValueError):
        tolerance(jnp.ones(2), margin=1.0, sigmoid="nope")
    with pytest.raises(ValueError):
        tolerance(jnp.ones(2), margin=1.0, sigmoid="gaussian", value_at_margin=0.0)


# ---------------------------------------------------------------------------------------------- rewards on rollouts
@pytest.mark.parametrize("task", TASKS)
def test_reward_terms_match_numpy_on_cpu_rollouts(task):
    """Every term and the reward, on states of random-action rollouts (upright, stumbling and fallen robots)."""
    env = envs.make(f"humanoidbench/{task}", physics="cpu")
    gym_env = env.cpu()
    m, d = gym_env.unwrapped.model, gym_env.unwrapped.data
    rng = np.random.default_rng(0)
    step = jax.jit(env.step)
    checked = 0
    ranges = {}
    jax_errors = []
    for seed in range(2):
        gym_env.reset(seed=seed)
        if task == "h1_pole" and seed == 1:  # start against a pole so the collision discount is exercised
            qpos = d.qpos.copy()
            qpos[:2] = (1.0, 0.6)
            gym_env.unwrapped.set_state(qpos, np.zeros(m.nv))
        for _ in range(40):
            qpos, qvel, warm = d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()
            action = rng.uniform(-1, 1, 19).astype(np.float32)
            _, reward, terminated, _, info = gym_env.step(action)
            ref_reward, ref_terms = np_terms(task, m, d)
            assert set(ref_terms) | {"success"} == set(info)
            for name, value in ref_terms.items():
                assert info[name] == pytest.approx(value, abs=2e-6), name
                ranges.setdefault(name, []).append(value)
            assert reward == pytest.approx(ref_reward, abs=2e-6)
            # the JAX env (CPU backend) from the same state, under the same action: the same terms
            # Its controls are float32 (the gym env's float64): ~1e-7 apart, which is invisible in most steps but
            # moves the state by up to ~1e-4 in steps where a contact is about to come or go (measured).
            state = step(env.state_from(qpos, qvel, warm), jnp.asarray(action))
            jax_errors.append(max(abs(float(state.info[n]) - v) for n, v in ref_terms.items()))
            checked += 1
            if terminated:
                break
    assert checked >= 20
    assert np.mean(np.asarray(jax_errors) < 1e-5) >= 0.7 and max(jax_errors) < 1e-2, jax_errors
    # the states were varied enough to exercise the shaped parts of the terms
    assert np.ptp(ranges["small_control"]) > 0.01 and np.ptp(ranges["upright"] + ranges["standing"]) > 0.01
    if task == "h1_pole":
        assert set(ranges["collision_discount"]) == {0.1, 1.0}
