"""hammer-v3: grasp the hammer and drive the nail in (success: nail slide joint > 0.09)."""

import jax.numpy as jnp
import numpy as np

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import tolerance

HANDLE_LENGTH = 0.14


class Hammer(SawyerTask):
    short_name = "hammer-v3"
    xml = "sawyer_hammer.xml"
    hand_init_pos = (0.0, 0.4, 0.2)
    rand_low, rand_high = (-0.1, 0.4, 0.0), (0.1, 0.5, 0.0)  # hammer position
    goal_low, goal_high = (0.2399, 0.7399, 0.109), (0.2401, 0.7401, 0.111)
    fixed_model_body_pos = {"box": np.array([0.24, 0.85, 0.0])}

    def _init_constants(self):
        super()._init_constants()
        # The goal is the "goal" site after the hand reset (the nail box never moves).
        self.target_pos = self.hand_reset_view["site_xpos"][self.ids.site["goal"]].copy()
        self.nail_qposadr = int(self.mj_model.jnt_qposadr[self.ids.joint["NailSlideJoint"]])

    def place(self, qpos, qvel, rand):
        return qpos.at[9:12].set(rand), qvel.at[9:15].set(0.0)

    def episode_constants(self, view, rand):
        return dict(target_pos=self.target_pos, obj_init_pos=rand)

    def objects(self, view):
        hammer, nail = self.ids.body["hammer"], self.ids.body["nail_link"]
        return [view["xpos"][hammer], view["xpos"][nail]], [view["xquat"][hammer], view["xquat"][nail]]

    def reward(self, obs, view, episode, action, touch):
        hand, hammer = obs[:3], obs[4:7]
        hammer_head = hammer + jnp.array([0.16, 0.06, 0.0])
        threshed = hammer.at[0].set(jnp.where(jnp.abs(hammer[0] - hand[0]) < HANDLE_LENGTH / 2.0, hand[0],
                                              hammer[0]))
        reward_quat = jnp.maximum(1.0 - jnp.linalg.norm(obs[7:11] - jnp.array([1.0, 0.0, 0.0, 0.0])) / 0.4, 0.0)
        reward_grab = self.caging(action, threshed, view, episode, object_reach_radius=0.01, obj_radius=0.015,
                                  pad_success_thresh=0.02, xz_thresh=0.01, high_density=True)
        lifted = (hammer_head[2] > 0.02).astype(jnp.float32)
        in_place = 0.1 * lifted + 0.9 * tolerance(jnp.linalg.norm(episode["target_pos"] - hammer_head), 0.0, 0.02,
                                                  0.2)
        reward = (2.0 * reward_grab + 6.0 * in_place) * reward_quat
        success = view["qpos"][self.nail_qposadr] > 0.09
        reward = jnp.where(success & (reward > 5.0), 10.0, reward)
        return reward, dict(success=success, near_object=reward_quat, grasp_success=reward_grab >= 0.5,
                            grasp_reward=reward_grab, in_place_reward=in_place, obj_to_target=0.0,
                            unscaled_reward=reward)
