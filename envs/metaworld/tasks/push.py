"""push-v3: push the puck to the goal (success: puck within 5 cm of the goal)."""

import jax.numpy as jnp

from envs.metaworld.reward_utils import tolerance
from envs.metaworld.tasks._push_common import PuckTask, grasp_success

TARGET_RADIUS = 0.05


class Push(PuckTask):
    short_name = "push-v3"
    xml = "sawyer_push_v3.xml"
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.1, 0.6, 0.02, -0.1, 0.8, 0.01), (0.1, 0.7, 0.02, 0.1, 0.9, 0.02)
    goal_low, goal_high = (-0.1, 0.8, 0.01), (0.1, 0.9, 0.02)
    min_obj_goal_xy_distance = 0.15
    puck_frame = "body"

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
