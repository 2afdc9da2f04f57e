"""HumanoidBench's reward terms for the H1, as jnp functions of the physics quantities (see `h1.Quantities`).

Constants and formulas follow HumanoidBench (humanoid_bench/envs/basic_locomotion_envs.py, envs/pole.py); every
term uses dm_control's tolerance semantics (`envs.rewards.tolerance`).
"""

from __future__ import annotations

import jax.numpy as jnp

from envs.rewards import tolerance

STAND_HEIGHT = 1.65  # head height above which `standing` is 1
INF = float("inf")


def standing(head_z: jnp.ndarray) -> jnp.ndarray:
    return tolerance(head_z, bounds=(STAND_HEIGHT, INF), margin=STAND_HEIGHT / 4)


def upright(torso_zz: jnp.ndarray, bound: float = 0.9) -> jnp.ndarray:
    return tolerance(torso_zz, bounds=(bound, INF), sigmoid="linear", margin=1.9, value_at_margin=0.0)


def small_control(actuator_force: jnp.ndarray) -> jnp.ndarray:
    per_actuator = tolerance(actuator_force, margin=10.0, value_at_margin=0.0, sigmoid="quadratic")
    return (4.0 + jnp.mean(per_actuator, axis=-1)) / 5.0


def move(com_vx: jnp.ndarray, speed: float) -> jnp.ndarray:
    m = tolerance(com_vx, bounds=(speed, INF), margin=speed, value_at_margin=0.0, sigmoid="linear")
    return (5.0 * m + 1.0) / 6.0


def dont_move(com_vxy: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(tolerance(com_vxy, margin=2.0), axis=-1)


def stand_terms(q: dict) -> dict:
    """`standing`, `upright`, `stand_reward` and `small_control`, shared by stand, walk, run and pole."""
    s = standing(q["sites"][..., 0, 2])
    u = upright(q["torso_zz"])
    return {"standing": s, "upright": u, "stand_reward": s * u, "small_control": small_control(q["actuator_force"])}
