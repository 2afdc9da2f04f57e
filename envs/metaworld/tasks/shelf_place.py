"""shelf-place-v3: pick the block and place it on the shelf (success: block within 7 cm of the goal)."""

import jax.numpy as jnp
import numpy as np

from envs.metaworld.reward_utils import hamacher_product, tolerance
from envs.metaworld.tasks._push_common import PuckTask, grasp_success, obj_start

TARGET_RADIUS = 0.05


class ShelfPlace(PuckTask):
    short_name = "shelf-place-v3"
    xml = "sawyer_shelf_placing.xml"
    hand_init_pos = tuple(np.float32([0.0, 0.6, 0.2]).astype(float))  # float32 in the package
    rand_low, rand_high = (-0.1, 0.5, 0.019, -0.1, 0.8, 0.299), (0.1, 0.6, 0.021, 0.1, 0.9, 0.301)
    goal_low, goal_high = (-0.1, 0.8, 0.299), (0.1, 0.9, 0.301)
    min_obj_goal_xy_distance = 0.1
    moved_body = "shelf"
    puck_frame = "body"

    def _init_constants(self):
        super()._init_constants()
        self.goal_site_local = np.array(self.mj_model.site_pos[self.ids.site["goal"]])

    def fixture(self, rand):
        return rand[3:6] - jnp.array([0.0, 0.0, 0.3])

    def episode_constants(self, view, rand):
        shelf = rand[3:6] - jnp.array([0.0, 0.0, 0.3])
        return dict(target_pos=self.goal_site_local + shelf, obj_init_pos=obj_start(rand, self.obj_z))

    def reward(self, obs, view, episode, action, touch):
        obj, tcp_opened = obs[4:7], obs[3]
        target, init = episode["target_pos"], episode["obj_init_pos"]
        obj_to_target = jnp.linalg.norm(obj - target)
        tcp_to_obj = jnp.linalg.norm(obj - self.tcp_center(view))
        in_place = tolerance(obj_to_target, 0.0, TARGET_RADIUS, jnp.linalg.norm(init - target))
        grasped = self.caging(action, obj, view, episode, obj_radius=0.02, pad_success_thresh=0.05,
                              object_reach_radius=0.01, xz_thresh=0.01, high_density=False)
        reward = hamacher_product(grasped, in_place)
        below_shelf = (obj[2] > 0.0) & (obj[2] < 0.24) & (target[0] - 0.15 < obj[0]) & (obj[0] < target[0] + 0.15)
        in_front = below_shelf & (target[1] - 3 * TARGET_RADIUS < obj[1]) & (obj[1] < target[1])
        z_scaling = (0.24 - obj[2]) / 0.24
        y_scaling = (obj[1] - (target[1] - 3 * TARGET_RADIUS)) / (3 * TARGET_RADIUS)
        bound_loss = hamacher_product(jnp.clip(y_scaling, 0.0, 1.0), jnp.clip(z_scaling, 0.0, 1.0))
        in_place = jnp.where(in_front, jnp.clip(in_place - bound_loss, 0.0, 1.0), in_place)
        in_place = jnp.where(below_shelf & (obj[1] > target[1]), 0.0, in_place)
        lifted = (tcp_to_obj < 0.025) & (tcp_opened > 0) & (obj[2] - 0.01 > init[2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        return reward, dict(success=obj_to_target <= 0.07, near_object=tcp_to_obj <= 0.03,
                            grasp_success=grasp_success(touch, tcp_opened, obj, init), grasp_reward=grasped,
                            in_place_reward=in_place, obj_to_target=obj_to_target, unscaled_reward=reward)
