"""h1_stand: stand still, head above 1.65 m. HumanoidBench's `Stand` (Walk with move speed 0)."""

from __future__ import annotations

from envs.humanoidbench import terms
from envs.humanoidbench.task_spec import TaskSpec


def reward(q):
    t = terms.stand_terms(q)
    t["dont_move"] = terms.dont_move(q["com_vel"][..., :2])
    return t["small_control"] * t["stand_reward"] * t["dont_move"], t


def terminated(q):
    return q["qpos"][..., 2] < 0.2


SPEC = TaskSpec("h1_stand", "envs/h1_pos_stand.xml", 800.0, reward, terminated)
