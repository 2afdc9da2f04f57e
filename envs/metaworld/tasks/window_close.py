"""window-close-v3: slide the window closed (success: handle within 5 cm of the goal along x).

The package's reset moves the window body and sets the slide joint to 0.2 without any forward pass: its reset
observation and the handle's initial position come from the kinematics left over from the hand reset's last
substep (`stale_reset_view`), and the slide is set afterwards (`after_reset_obs`).
"""

import jax.numpy as jnp
import numpy as np

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import hamacher_product, tolerance

TARGET_RADIUS = 0.05


class WindowClose(SawyerTask):
    short_name = "window-close-v3"
    xml = "sawyer_window_horizontal.xml"
    hand_init_pos = tuple(np.float32([0.0, 0.4, 0.2]).astype(float))  # float32 in the package
    rand_low, rand_high = (0.0, 0.75, 0.2), (0.0, 0.9, 0.2)  # window position
    goal_low, goal_high = (-0.5, 0.40, 0.05), (0.5, 1.0, 0.5)  # the hand bounds
    moved_body = "window"
    stale_reset_view = True

    def _init_constants(self):
        super()._init_constants()
        self.slide_qposadr = int(self.mj_model.jnt_qposadr[self.ids.joint["window_slide"]])

    def place(self, qpos, qvel, rand):
        return qpos, qvel

    def fixture(self, rand):
        return rand

    def episode_constants(self, view, rand):
        handle = view["site_xpos"][self.ids.site["handleCloseStart"]]
        return dict(target_pos=rand, handle_init_pos=handle + jnp.array([0.2, 0.0, 0.0]), obj_init_pos=rand)

    def after_reset_obs(self, qpos):
        return qpos.at[self.slide_qposadr].set(0.2)

    def objects(self, view):
        return [view["site_xpos"][self.ids.site["handleCloseStart"]]], [jnp.zeros(4)]

    def reward(self, obs, view, episode, action, touch):
        obj = view["site_xpos"][self.ids.site["handleCloseStart"]]
        tcp = self.tcp_center(view)
        target, handle_init = episode["target_pos"], episode["handle_init_pos"]
        target_to_obj = jnp.abs(obj[0] - target[0])
        target_to_obj_init = jnp.abs(handle_init[0] - target[0])
        in_place = tolerance(target_to_obj, 0.0, TARGET_RADIUS, jnp.abs(target_to_obj_init - TARGET_RADIUS))
        handle_radius = 0.02
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(handle_init - episode["init_tcp"])
        reach = tolerance(tcp_to_obj, 0.0, handle_radius, jnp.abs(tcp_to_obj_init - handle_radius), "gaussian")
        reward = 10.0 * hamacher_product(reach, in_place)
        return reward, dict(success=target_to_obj <= TARGET_RADIUS, near_object=tcp_to_obj <= 0.05,
                            grasp_success=1.0, grasp_reward=reach, in_place_reward=in_place,
                            obj_to_target=target_to_obj, unscaled_reward=reward)
