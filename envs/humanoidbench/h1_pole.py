"""h1_pole: walk forward (0.5 m/s) through a forest of thin poles without touching them. HumanoidBench's `Pole`.

The collision discount (0.1 in a step whose final contacts include a pole and a geom other than the floor, else 1)
comes from the `pole_contact` quantity: real MuJoCo contacts on the CPU backend; on MJX, where robot-pole contacts
are not simulated (see docs/humanoidbench.md), from `pole_touches` below, a geometric test of each pole against the
oriented bounding boxes of the robot's collision geoms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.humanoidbench import terms
from envs.humanoidbench.task_spec import TaskSpec

SPEED = 0.5
DISCOUNT = 0.1


def reward(q):
    t = terms.stand_terms(q)
    t["move"] = terms.move(q["com_vel"][..., 0], SPEED)
    t["collision_discount"] = jnp.where(q["pole_contact"] > 0.5, DISCOUNT, 1.0).astype(jnp.float32)
    r = (0.5 * (t["small_control"] * t["stand_reward"]) + 0.5 * t["move"]) * t["collision_discount"]
    return r, t


def terminated(q):
    return q["qpos"][..., 2] < 0.5


def segment_box_distance(a, b, box_pos, box_mat, box_center, box_half, iterations: int = 24):
    """Distance from segment [a, b] (world, (3,)) to oriented boxes (box_pos (G,3), box_mat (G,3,3) local->world,
    box_center/box_half (G,3) in the box's local frame). Golden-section search on the convex distance along the
    segment; returns (G,)."""

    def dist(s):  # s: (G,) in [0, 1]
        p = a[None, :] + s[:, None] * (b - a)[None, :]
        local = jnp.einsum("gji,gj->gi", box_mat, p - box_pos) - box_center
        return jnp.linalg.norm(jnp.maximum(jnp.abs(local) - box_half, 0.0), axis=-1)

    ratio = 0.6180339887
    lo = jnp.zeros(box_pos.shape[0])
    hi = jnp.ones(box_pos.shape[0])

    def body(_, carry):
        lo, hi = carry
        m1 = hi - ratio * (hi - lo)
        m2 = lo + ratio * (hi - lo)
        left = dist(m1) < dist(m2)
        return jnp.where(left, lo, m1), jnp.where(left, m2, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return jnp.minimum(jnp.minimum(dist(lo), dist(hi)), jnp.minimum(dist(jnp.zeros_like(lo)), dist(jnp.ones_like(lo))))


def pole_touches(pole_bottom, pole_top, pole_radius, box_pos, box_mat, box_center, box_half):
    """1.0 if any pole (P,3 bottoms/tops, P radii) comes within its radius of any box, else 0.0."""
    d = jax.vmap(lambda a, b: segment_box_distance(a, b, box_pos, box_mat, box_center, box_half))(pole_bottom, pole_top)
    return jnp.any(d <= pole_radius[:, None]).astype(jnp.float32)


SPEC = TaskSpec("h1_pole", "envs/h1_pos_pole.xml", 700.0, reward, terminated, pole_contact=True)
