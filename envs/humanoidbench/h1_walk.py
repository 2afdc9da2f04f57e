"""h1_walk: walk forward (+x) at 1 m/s or faster while standing. HumanoidBench's `Walk`."""

from __future__ import annotations

from envs.humanoidbench import terms
from envs.humanoidbench.task_spec import TaskSpec

SPEED = 1.0


def locomotion_reward(q, speed: float):
    t = terms.stand_terms(q)
    t["move"] = terms.move(q["com_vel"][..., 0], speed)
    return t["small_control"] * t["stand_reward"] * t["move"], t


def reward(q):
    return locomotion_reward(q, SPEED)


def terminated(q):
    return q["qpos"][..., 2] < 0.2


SPEC = TaskSpec("h1_walk", "envs/h1_pos_walk.xml", 700.0, reward, terminated)
