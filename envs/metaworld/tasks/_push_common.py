"""Shared pieces of the puck tasks (push, push-wall, push-back, shelf-place)."""

import jax.numpy as jnp


def grasp_success(touch, tcp_opened, obj, obj_init_pos):
    """The info's grasp flag: both pads press the object, gripper open, object lifted 2 cm above its start."""
    touching = (touch[0] > 0) & (touch[1] > 0)
    return touching & (tcp_opened > 0) & (obj[2] - 0.02 > obj_init_pos[2])


def place_obj(qpos, qvel, xyz):
    """The package's `_set_obj_xyz`: free joint position qpos[9:12], velocities qvel[9:15] zeroed."""
    return qpos.at[9:12].set(xyz), qvel.at[9:15].set(0.0)


def obj_start(rand, z):
    return jnp.stack([rand[0], rand[1], jnp.asarray(z, rand.dtype)])
