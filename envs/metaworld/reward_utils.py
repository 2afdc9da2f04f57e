"""MetaWorld's reward building blocks in jnp: tolerance (long_tail, gaussian), Hamacher product, gripper caging.

Written from the definitions in metaworld 3.1.1 (utils/reward_utils.py, SawyerXYZEnv._gripper_caging_reward);
every function is pure and jit/vmap-able, and returns float32 scalars.
"""

from __future__ import annotations

import jax.numpy as jnp

VALUE_AT_MARGIN = 0.1


def _sigmoid(x, kind: str):
    if kind == "long_tail":
        scale = jnp.sqrt(1.0 / VALUE_AT_MARGIN - 1.0)
        return 1.0 / ((x * scale) ** 2 + 1.0)
    if kind == "gaussian":
        scale = jnp.sqrt(-2.0 * jnp.log(VALUE_AT_MARGIN))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    raise ValueError(f"unsupported sigmoid {kind!r}")


def tolerance(x, lower, upper, margin, sigmoid: str = "long_tail"):
    """1 inside [lower, upper]; outside, `sigmoid(distance / margin)` (0 when margin is 0)."""
    x = jnp.asarray(x, jnp.float32)
    in_bounds = (lower <= x) & (x <= upper)
    distance = jnp.where(x < lower, lower - x, x - upper)
    safe_margin = jnp.where(margin > 0, margin, 1.0)
    outside = jnp.where(margin > 0, _sigmoid(distance / safe_margin, sigmoid), 0.0)
    return jnp.where(in_bounds, 1.0, outside).astype(jnp.float32)


def hamacher_product(a, b):
    """a*b / (a + b - a*b), 0 where the denominator is 0."""
    denominator = a + b - a * b
    safe = jnp.where(denominator > 0, denominator, 1.0)
    return jnp.where(denominator > 0, a * b / safe, 0.0).astype(jnp.float32)


def gripper_caging_reward(
    action,
    obj_pos,
    *,
    left_pad,
    right_pad,
    tcp,
    obj_init_pos,
    init_tcp,
    obj_radius: float,
    pad_success_thresh: float,
    object_reach_radius: float,
    xz_thresh: float,
    desired_gripper_effort: float = 1.0,
    high_density: bool = False,
    medium_density: bool = False,
):
    """The base SawyerXYZEnv caging reward (y caging by the pads, xz closeness, gripper effort)."""
    pad_y = jnp.stack([left_pad[1], right_pad[1]])
    pad_to_obj = jnp.abs(pad_y - obj_pos[1])
    pad_to_obj_init = jnp.abs(pad_y - obj_init_pos[1])
    caging_margin = jnp.abs(pad_to_obj_init - pad_success_thresh)
    caging_left = tolerance(pad_to_obj[0], obj_radius, pad_success_thresh, caging_margin[0])
    caging_right = tolerance(pad_to_obj[1], obj_radius, pad_success_thresh, caging_margin[1])
    caging_y = hamacher_product(caging_left, caging_right)

    xz = jnp.array([0, 2])
    xz_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - xz_thresh
    caging_xz = tolerance(jnp.linalg.norm(tcp[xz] - obj_pos[xz]), 0.0, xz_thresh, xz_margin)

    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), desired_gripper_effort) / desired_gripper_effort
    caging = hamacher_product(caging_y, caging_xz)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = hamacher_product(caging, gripping)
    if high_density:
        caging_and_gripping = (caging_and_gripping + caging) / 2.0
    if medium_density:
        tcp_to_obj = jnp.linalg.norm(obj_pos - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj_init_pos - init_tcp)
        reach_margin = jnp.abs(tcp_to_obj_init - object_reach_radius)
        reach = tolerance(tcp_to_obj, 0.0, object_reach_radius, reach_margin)
        caging_and_gripping = (caging_and_gripping + reach) / 2.0
    return caging_and_gripping.astype(jnp.float32)


def quat_from_matrix_xyzw(mat):
    """Rotation matrix (3, 3) -> quaternion (x, y, z, w), following SciPy's `Rotation.from_matrix(m).as_quat()`.

    SciPy picks the largest of (m00, m11, m22, trace) to build the quaternion and then normalises it; the sign
    convention follows from that choice, so the same branch logic is reproduced here.
    """
    m = mat
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    decision = jnp.stack([m[0, 0], m[1, 1], m[2, 2], trace])
    choice = jnp.argmax(decision)

    def from_diagonal(i: int):
        j, k = (i + 1) % 3, (i + 2) % 3
        q = [None, None, None, None]
        q[i] = 1.0 - trace + 2.0 * m[i, i]
        q[j] = m[j, i] + m[i, j]
        q[k] = m[k, i] + m[i, k]
        q[3] = m[k, j] - m[j, k]
        return jnp.stack(q)

    from_trace = jnp.stack([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 1.0 + trace])
    candidates = jnp.stack([from_diagonal(0), from_diagonal(1), from_diagonal(2), from_trace])
    q = candidates[choice]
    return q / jnp.linalg.norm(q)
