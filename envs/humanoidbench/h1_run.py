"""h1_run: run forward (+x) at 5 m/s or faster while standing. HumanoidBench's `Run` (Walk with speed 5)."""

from __future__ import annotations

from envs.humanoidbench.h1_walk import locomotion_reward, terminated
from envs.humanoidbench.task_spec import TaskSpec

SPEED = 5.0


def reward(q):
    return locomotion_reward(q, SPEED)


SPEC = TaskSpec("h1_run", "envs/h1_pos_run.xml", 700.0, reward, terminated)
