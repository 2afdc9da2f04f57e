"""peg-unplug-side-v3: pull the peg sideways out of its socket (success: peg end within 7 cm of the goal)."""

import jax.numpy as jnp
import numpy as np

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import tolerance

PLUG_OFFSET = np.array([0.044, 0.0, 0.131])


class PegUnplugSide(SawyerTask):
    short_name = "peg-unplug-side-v3"
    xml = "sawyer_peg_unplug_side.xml"
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.25, 0.6, -0.001), (-0.15, 0.8, 0.001)  # box position
    goal_low = tuple(np.array([-0.25, 0.6, -0.001]) + [0.194, 0.0, 0.131])
    goal_high = tuple(np.array([-0.15, 0.8, 0.001]) + [0.194, 0.0, 0.131])
    moved_body = "box"

    def place(self, qpos, qvel, rand):
        plug = rand + PLUG_OFFSET
        qpos = qpos.at[9:12].set(plug).at[12:16].set(jnp.array([1.0, 0.0, 0.0, 0.0]))
        return qpos, qvel.at[9:12].set(0.0)  # the package zeroes only the plug's linear velocity

    def fixture(self, rand):
        return rand

    def episode_constants(self, view, rand):
        return dict(target_pos=rand + PLUG_OFFSET + jnp.array([0.15, 0.0, 0.0]),
                    obj_init_pos=view["site_xpos"][self.ids.site["pegEnd"]])

    def objects(self, view):
        return [view["site_xpos"][self.ids.site["pegEnd"]]], [view["xquat"][self.ids.body["plug1"]]]

    def reward(self, obs, view, episode, action, touch):
        tcp = self.tcp_center(view)
        obj, tcp_opened = obs[4:7], obs[3]
        target, init = episode["target_pos"], episode["obj_init_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        obj_to_target = jnp.linalg.norm(obj - target)
        grasped = self.caging(action, obj, view, episode, object_reach_radius=0.01, obj_radius=0.025,
                              pad_success_thresh=0.05, xz_thresh=0.005, desired_gripper_effort=0.8,
                              high_density=True)
        in_place = tolerance(obj_to_target, 0.0, 0.05, jnp.linalg.norm(init - target))
        grasp = (tcp_opened > 0.5) & (obj[0] - init[0] > 0.015)
        reward = 2.0 * grasped
        reward = jnp.where(grasp & (tcp_to_obj < 0.035), 1.0 + 2.0 * grasped + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target <= 0.05, 10.0, reward)
        return reward, dict(success=obj_to_target <= 0.07, near_object=tcp_to_obj <= 0.03, grasp_success=grasp,
                            grasp_reward=grasped, in_place_reward=in_place, obj_to_target=obj_to_target,
                            unscaled_reward=reward)
