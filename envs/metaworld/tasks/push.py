"""push-v3: push the puck to the goal (success: puck within 5 cm of the goal)."""

import jax.numpy as jnp

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import quat_from_matrix_xyzw, tolerance
from envs.metaworld.tasks._push_common import grasp_success, obj_start, place_obj

TARGET_RADIUS = 0.05


class Push(SawyerTask):
    short_name = "push-v3"
    xml = "sawyer_push_v3.xml"
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.1, 0.6, 0.02, -0.1, 0.8, 0.01), (0.1, 0.7, 0.02, 0.1, 0.9, 0.02)
    goal_low, goal_high = (-0.1, 0.8, 0.01), (0.1, 0.9, 0.02)
    min_obj_goal_xy_distance = 0.15
    needs_touch = True

    def _init_constants(self):
        super()._init_constants()
        self.obj_z = float(self.hand_reset_view["xpos"][self.ids.body["obj"]][2])

    def place(self, qpos, qvel, rand):
        qpos, qvel = place_obj(qpos, qvel, obj_start(rand, self.obj_z))
        return qpos, qvel

    def episode_constants(self, view, rand):
        return dict(target_pos=obj_start(rand[3:5], self.obj_z), obj_init_pos=obj_start(rand, self.obj_z))

    def objects(self, view):
        return ([view["xpos"][self.ids.body["obj"]]],
                [quat_from_matrix_xyzw(view["geom_xmat"][self.ids.geom["objGeom"]])])

    def reward(self, obs, view, episode, action, touch):
        obj, tcp_opened = obs[4:7], obs[3]
        target, init = episode["target_pos"], episode["obj_init_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - self.tcp_center(view))
        target_to_obj = jnp.linalg.norm(obj - target)
        in_place = tolerance(target_to_obj, 0.0, TARGET_RADIUS, jnp.linalg.norm(init - target))
        grasped = self.caging(action, obj, view, episode, object_reach_radius=0.01, obj_radius=0.015,
                              pad_success_thresh=0.05, xz_thresh=0.005, high_density=True)
        reward = 2.0 * grasped
        # The package adds `1 + reward + 5 * in_place` to reward, i.e. counts 2 * grasped twice.
        reward = jnp.where((tcp_to_obj < 0.02) & (tcp_opened > 0), 2.0 * reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        return reward, dict(success=target_to_obj <= TARGET_RADIUS, near_object=tcp_to_obj <= 0.03,
                            grasp_success=grasp_success(touch, tcp_opened, obj, init), grasp_reward=grasped,
                            in_place_reward=in_place, obj_to_target=target_to_obj, unscaled_reward=reward)
