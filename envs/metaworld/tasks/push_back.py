"""push-back-v3: push the block backwards to the goal (success: block within 7 cm of the goal)."""

import jax.numpy as jnp
import numpy as np

from envs.metaworld.reward_utils import hamacher_product, tolerance
from envs.metaworld.tasks._push_common import PuckTask, grasp_success

OBJ_RADIUS = 0.007
TARGET_RADIUS = 0.05


class PushBack(PuckTask):
    short_name = "push-back-v3"
    xml = "sawyer_push_back_v3.xml"
    hand_init_pos = tuple(np.float32([0.0, 0.6, 0.2]).astype(float))  # float32 in the package
    rand_low, rand_high = (-0.1, 0.8, 0.02, -0.1, 0.6, 0.0199), (0.1, 0.85, 0.02, 0.1, 0.7, 0.0201)
    goal_low, goal_high = (-0.1, 0.6, 0.0199), (0.1, 0.7, 0.0201)
    min_obj_goal_xy_distance = 0.15

    def _caging(self, action, obj, view, episode):
        """push-back's own caging reward.

        The package's margins use `init_left_pad` / `init_right_pad`, which it stores as live views of the pads'
        current positions (`get_body_com` returns a view of MjData.xpos), so they equal the current pads.
        """
        pad_margin = 0.05
        grip_margin = OBJ_RADIUS + 0.003
        xz_margin = 0.01
        tcp = self.tcp_center(view)
        left_pad, right_pad = self.pads(view)
        delta_left = left_pad[1] - obj[1]
        delta_right = obj[1] - right_pad[1]
        right_caging_margin = jnp.abs(jnp.abs(obj[1] - right_pad[1]) - pad_margin)
        left_caging_margin = jnp.abs(jnp.abs(obj[1] - left_pad[1]) - pad_margin)
        right_caging = tolerance(delta_right, OBJ_RADIUS, pad_margin, right_caging_margin)
        left_caging = tolerance(delta_left, OBJ_RADIUS, pad_margin, left_caging_margin)
        right_gripping = tolerance(delta_right, OBJ_RADIUS, grip_margin, right_caging_margin)
        left_gripping = tolerance(delta_left, OBJ_RADIUS, grip_margin, left_caging_margin)
        y_caging = hamacher_product(right_caging, left_caging)
        y_gripping = hamacher_product(right_gripping, left_gripping)
        xz = jnp.array([0, 2])
        tcp_obj_xz = jnp.linalg.norm(tcp[xz] - obj[xz])
        xz_caging_margin = jnp.linalg.norm(episode["obj_init_pos"][xz] - episode["init_tcp"][xz]) - xz_margin
        xz_caging = tolerance(tcp_obj_xz, 0.0, xz_margin, xz_caging_margin)
        caging = hamacher_product(y_caging, xz_caging)
        gripping = jnp.where(caging > 0.95, y_gripping, 0.0)
        return (caging + gripping) / 2.0

    def reward(self, obs, view, episode, action, touch):
        obj, tcp_opened = obs[4:7], obs[3]
        target, init = episode["target_pos"], episode["obj_init_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - self.tcp_center(view))
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(init - target)
        in_place = tolerance(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init)
        grasped = self._caging(action, obj, view, episode)
        reward = hamacher_product(grasped, in_place)
        pushing = (tcp_to_obj < 0.01) & (tcp_opened > 0) & (tcp_opened < 0.55) & (
            target_to_obj_init - target_to_obj > 0.01)
        reward = jnp.where(pushing, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        return reward, dict(success=target_to_obj <= 0.07, near_object=tcp_to_obj <= 0.03,
                            grasp_success=grasp_success(touch, tcp_opened, obj, init), grasp_reward=grasped,
                            in_place_reward=in_place, obj_to_target=target_to_obj, unscaled_reward=reward)
