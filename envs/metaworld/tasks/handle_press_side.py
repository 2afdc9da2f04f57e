"""handle-press-side-v3: press the handle down from the side (success: handle within 2 cm of the press height)."""

import jax.numpy as jnp

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import hamacher_product, tolerance

TARGET_RADIUS = 0.02


class HandlePressSide(SawyerTask):
    short_name = "handle-press-side-v3"
    xml = "sawyer_handle_press_sideways.xml"
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.35, 0.65, -0.001), (-0.25, 0.75, 0.001)  # box position
    goal_low, goal_high = (-0.5, 0.40, 0.05), (0.5, 1.0, 0.5)  # the hand bounds
    moved_body = "box"

    def place(self, qpos, qvel, rand):
        return qpos.at[9].set(-0.001), qvel.at[9].set(0.0)

    def fixture(self, rand):
        return rand

    def episode_constants(self, view, rand):
        return dict(target_pos=view["site_xpos"][self.ids.site["goalPress"]],
                    handle_init_pos=view["site_xpos"][self.ids.site["handleStart"]], obj_init_pos=rand)

    def objects(self, view):
        return [view["site_xpos"][self.ids.site["handleStart"]]], [jnp.zeros(4)]

    def reward(self, obs, view, episode, action, touch):
        obj = view["site_xpos"][self.ids.site["handleStart"]]
        tcp = self.tcp_center(view)
        target, handle_init = episode["target_pos"], episode["handle_init_pos"]
        target_to_obj = jnp.abs(obj[2] - target[2])
        target_to_obj_init = jnp.abs(handle_init[2] - target[2])
        in_place = tolerance(target_to_obj, 0.0, TARGET_RADIUS, jnp.abs(target_to_obj_init - TARGET_RADIUS))
        handle_radius = 0.02
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(handle_init - episode["init_tcp"])
        reach = tolerance(tcp_to_obj, 0.0, handle_radius, jnp.abs(tcp_to_obj_init - handle_radius))
        reward = hamacher_product(reach, in_place)
        reward = 10.0 * jnp.where(target_to_obj <= TARGET_RADIUS, 1.0, reward)
        return reward, dict(success=target_to_obj <= TARGET_RADIUS, near_object=tcp_to_obj <= 0.05,
                            grasp_success=1.0, grasp_reward=reach, in_place_reward=in_place,
                            obj_to_target=target_to_obj, unscaled_reward=reward)
