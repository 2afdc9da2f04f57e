"""push-wall-v3: push the puck around the wall to the goal (success: puck within 7 cm of the goal)."""

import jax.numpy as jnp

from envs.metaworld.reward_utils import tolerance
from envs.metaworld.tasks._push_common import PuckTask, grasp_success

TARGET_RADIUS = 0.05


class PushWall(PuckTask):
    short_name = "push-wall-v3"
    xml = "sawyer_push_wall_v3.xml"
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.05, 0.6, 0.015, -0.05, 0.85, 0.01), (0.05, 0.65, 0.015, 0.05, 0.9, 0.02)
    goal_low, goal_high = (-0.05, 0.85, 0.01), (0.05, 0.9, 0.02)
    min_obj_goal_xy_distance = 0.15

    def reward(self, obs, view, episode, action, touch):
        tcp = self.tcp_center(view)
        obj, tcp_opened = obs[4:7], obs[3]
        target, init = episode["target_pos"], episode["obj_init_pos"]
        midpoint = jnp.stack([-0.05, 0.77, obj[2]])
        scaling = jnp.array([3.0, 1.0, 1.0])
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        obj_to_midpoint = jnp.linalg.norm((obj - midpoint) * scaling)
        obj_to_midpoint_init = jnp.linalg.norm((init - midpoint) * scaling)
        obj_to_target = jnp.linalg.norm(obj - target)
        obj_to_target_init = jnp.linalg.norm(init - target)
        in_place_part1 = tolerance(obj_to_midpoint, 0.0, TARGET_RADIUS, obj_to_midpoint_init)
        in_place_part2 = tolerance(obj_to_target, 0.0, TARGET_RADIUS, obj_to_target_init)
        grasped = self.caging(action, obj, view, episode, object_reach_radius=0.01, obj_radius=0.015,
                              pad_success_thresh=0.05, xz_thresh=0.005, high_density=True)
        reward = 2.0 * grasped
        near = (tcp_to_obj < 0.02) & (tcp_opened > 0)
        reward = jnp.where(near, jnp.where(obj[1] > 0.75, 2.0 * grasped + 5.0 + 3.0 * in_place_part2,
                                           2.0 * grasped + 1.0 + 4.0 * in_place_part1), reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        return reward, dict(success=obj_to_target <= 0.07, near_object=tcp_to_obj <= 0.03,
                            grasp_success=grasp_success(touch, tcp_opened, obj, init), grasp_reward=grasped,
                            in_place_reward=in_place_part2, obj_to_target=obj_to_target, unscaled_reward=reward)
