"""h1_slide: walk forward over repeated ramps (1.75 m high). HumanoidBench's `Slide` (= ClimbingUpwards)."""

from __future__ import annotations

from envs.humanoidbench import terms
from envs.humanoidbench.h1_walk import SPEED
from envs.humanoidbench.task_spec import TaskSpec
from envs.rewards import tolerance

N_RAMPS = 9


def reward(q):
    head_z = q["sites"][..., 0, 2]
    left_z, right_z = q["sites"][..., 1, 2], q["sites"][..., 2, 2]
    standing = tolerance(head_z - left_z, bounds=(1.2, terms.INF), margin=0.45) * tolerance(
        head_z - right_z, bounds=(1.2, terms.INF), margin=0.45
    )
    upright = terms.upright(q["torso_zz"], bound=0.5)
    t = {
        "standing": standing,
        "upright": upright,
        "stand_reward": standing * upright,
        "small_control": terms.small_control(q["actuator_force"]),
        "move": terms.move(q["com_vel"][..., 0], SPEED),
    }
    return t["stand_reward"] * t["small_control"] * t["move"], t


def terminated(q):
    return q["torso_zz"] < 0.1


SPEC = TaskSpec(
    "h1_slide",
    "envs/h1_pos_slide.xml",
    700.0,
    reward,
    terminated,
    mjx_terrain_geoms=tuple(f"slide_collision_{k}" if k else "slide_collision" for k in range(N_RAMPS)),
)
