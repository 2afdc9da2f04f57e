"""Shared pieces of the puck tasks (push, push-wall, push-back, shelf-place)."""

import jax.numpy as jnp

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import quat_from_matrix_xyzw


def grasp_success(touch, tcp_opened, obj, obj_init_pos):
    """The info's grasp flag: both pads press the object, gripper open, object lifted 2 cm above its start."""
    touching = (touch[0] > 0) & (touch[1] > 0)
    return touching & (tcp_opened > 0) & (obj[2] - 0.02 > obj_init_pos[2])


def place_obj(qpos, qvel, xyz):
    """The package's `_set_obj_xyz`: free joint position qpos[9:12], velocities qvel[9:15] zeroed."""
    return qpos.at[9:12].set(xyz), qvel.at[9:15].set(0.0)


def obj_start(rand, z):
    return jnp.stack([rand[0], rand[1], jnp.asarray(z, rand.dtype)])


class PuckTask(SawyerTask):
    """A task with a free puck (body `obj`, geom `objGeom`) set at (rand[0], rand[1], rest height) on reset.

    `puck_frame` says where the package reads the puck's position: "geom" (objGeom's xpos) or "body" (obj's xpos).
    The default goal is rand[3:5] at the puck's rest height; tasks with another goal override `episode_constants`.
    """

    needs_touch = True
    puck_frame = "geom"

    def puck_position(self, view):
        if self.puck_frame == "geom":
            return view["geom_xpos"][self.ids.geom["objGeom"]]
        return view["xpos"][self.ids.body["obj"]]

    def _init_constants(self):
        super()._init_constants()
        self.obj_z = float(self.puck_position(self.hand_reset_view)[2])

    def place(self, qpos, qvel, rand):
        return place_obj(qpos, qvel, obj_start(rand, self.obj_z))

    def episode_constants(self, view, rand):
        return dict(target_pos=obj_start(rand[3:5], self.obj_z), obj_init_pos=obj_start(rand, self.obj_z))

    def objects(self, view):
        return [self.puck_position(view)], [quat_from_matrix_xyzw(view["geom_xmat"][self.ids.geom["objGeom"]])]
