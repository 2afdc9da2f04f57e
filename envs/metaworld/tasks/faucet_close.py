"""faucet-close-v3: turn the faucet handle closed (success: handle end within 7 cm of the closed position)."""

import jax.numpy as jnp

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import tolerance

HANDLE_LENGTH = 0.175
TARGET_RADIUS = 0.07


class FaucetClose(SawyerTask):
    short_name = "faucet-close-v3"
    xml = "sawyer_faucet.xml"
    hand_low, hand_high = (-0.5, 0.40, -0.15), (0.5, 1.0, 0.5)
    hand_init_pos = (0.0, 0.4, 0.2)
    rand_low, rand_high = (-0.1, 0.8, 0.0), (0.1, 0.85, 0.0)  # faucet base position
    goal_low, goal_high = (-0.5, 0.40, -0.15), (0.5, 1.0, 0.5)  # the hand bounds
    moved_body = "faucetBase"

    def place(self, qpos, qvel, rand):
        return qpos, qvel

    def fixture(self, rand):
        return rand

    def episode_constants(self, view, rand):
        return dict(target_pos=rand + jnp.array([-HANDLE_LENGTH, 0.0, 0.125]), obj_init_pos=rand)

    def objects(self, view):
        pos = view["site_xpos"][self.ids.site["handleStartClose"]] + jnp.array([0.0, 0.0, -0.01])
        return [pos], [view["xquat"][self.ids.body["faucetBase"]]]

    def reward(self, obs, view, episode, action, touch):
        obj, tcp = obs[4:7], self.tcp_center(view)
        target, init = episode["target_pos"], episode["obj_init_pos"]
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(init - target)
        in_place = tolerance(target_to_obj, 0.0, TARGET_RADIUS, jnp.abs(target_to_obj_init - TARGET_RADIUS))
        reach_radius = 0.01
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(init - episode["init_tcp"])
        reach = tolerance(tcp_to_obj, 0.0, reach_radius, jnp.abs(tcp_to_obj_init - reach_radius), "gaussian")
        reward = 2.0 * (2.0 * reach + 3.0 * in_place)
        reward = jnp.where(target_to_obj <= TARGET_RADIUS, 10.0, reward)
        return reward, dict(success=target_to_obj <= 0.07, near_object=tcp_to_obj <= 0.01, grasp_success=1.0,
                            grasp_reward=reach, in_place_reward=in_place, obj_to_target=target_to_obj,
                            unscaled_reward=reward)
