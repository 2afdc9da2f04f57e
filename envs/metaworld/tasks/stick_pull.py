"""stick-pull-v3: grasp the stick, hook it into the thermos handle and pull the thermos to the goal.

Success: the handle within 12 cm of the goal with the stick's end inserted in the handle.
"""

import jax.numpy as jnp

from envs.metaworld.base import SawyerTask
from envs.metaworld.reward_utils import hamacher_product, quat_from_matrix_xyzw, tolerance
from envs.metaworld.tasks._push_common import grasp_success as pad_grasp_success

TARGET_RADIUS = 0.05
STICK_Z = 0.02


def stick_is_inserted(handle, end_of_stick):
    return ((end_of_stick[0] >= handle[0]) & (jnp.abs(end_of_stick[1] - handle[1]) <= 0.040)
            & (jnp.abs(end_of_stick[2] - handle[2]) <= 0.060))


class StickPull(SawyerTask):
    short_name = "stick-pull-v3"
    xml = "sawyer_stick_obj.xml"
    hand_low, hand_high = (-0.5, 0.35, 0.05), (0.5, 1.0, 0.5)
    hand_init_pos = (0.0, 0.6, 0.2)
    rand_low, rand_high = (-0.1, 0.55, 0.0, 0.35, 0.45, 0.0199), (0.0, 0.65, 0.001, 0.45, 0.55, 0.0201)
    goal_low, goal_high = (0.35, 0.45, 0.0199), (0.45, 0.55, 0.0201)
    min_obj_goal_xy_distance = 0.1
    needs_touch = True

    def place(self, qpos, qvel, rand):
        stick = jnp.stack([rand[0], rand[1], STICK_Z])
        qpos, qvel = qpos.at[9:12].set(stick), qvel.at[9:15].set(0.0)
        qpos, qvel = qpos.at[16:18].set(jnp.array([0.0, 0.09])), qvel.at[16:18].set(0.0)
        return qpos, qvel

    def episode_constants(self, view, rand):
        return dict(target_pos=jnp.stack([rand[3], rand[4], STICK_Z]),
                    stick_init_pos=jnp.stack([rand[0], rand[1], STICK_Z]),
                    obj_init_pos=view["xpos"][self.ids.body["object"]])

    def objects(self, view):
        stick = self.ids.body["stick"]
        return ([view["xpos"][stick], view["site_xpos"][self.ids.site["insertion"]]],
                [quat_from_matrix_xyzw(view["xmat"][stick]), jnp.zeros(4)])

    def reward(self, obs, view, episode, action, touch):
        tcp = self.tcp_center(view)
        stick, handle, tcp_opened = obs[4:7], obs[11:14], obs[3]
        end_of_stick = view["site_xpos"][self.ids.site["stick_end"]]
        offset = jnp.array([0.05, 0.0, 0.0])
        container = handle + offset
        container_init = episode["obj_init_pos"] + offset
        target, stick_init = episode["target_pos"], episode["stick_init_pos"]
        tcp_to_stick = jnp.linalg.norm(stick - tcp)
        handle_to_target = jnp.linalg.norm(handle - target)
        yz_scaling = jnp.array([1.0, 1.0, 2.0])
        stick_to_container = jnp.linalg.norm((stick - container) * yz_scaling)
        stick_in_place = tolerance(stick_to_container, 0.0, TARGET_RADIUS,
                                   jnp.linalg.norm((stick_init - container_init) * yz_scaling))
        stick_in_place_2 = tolerance(jnp.linalg.norm(stick - target), 0.0, TARGET_RADIUS,
                                     jnp.linalg.norm(stick_init - target))
        container_to_target = jnp.linalg.norm(container - target)  # the info's obj_to_target is handle_to_target
        container_in_place = tolerance(container_to_target, 0.0, TARGET_RADIUS,
                                       jnp.linalg.norm(episode["obj_init_pos"] - target))
        grasped = self.caging(action, stick, view, episode, obj_radius=0.014, pad_success_thresh=0.05,
                              object_reach_radius=0.01, xz_thresh=0.01, high_density=True)
        grasp = (tcp_to_stick < 0.02) & (tcp_opened > 0) & (stick[2] - 0.01 > stick_init[2])
        grasped = jnp.where(grasp, 1.0, grasped)
        in_place_and_grasped = hamacher_product(grasped, stick_in_place)
        inserted = stick_is_inserted(handle, end_of_stick)
        reward_inserted = jnp.where(handle_to_target <= 0.12, 10.0,
                                    6.0 + in_place_and_grasped + 2.0 * stick_in_place_2 + container_in_place)
        reward_grasped = jnp.where(inserted, reward_inserted, 1.0 + in_place_and_grasped + 5.0 * stick_in_place)
        reward = jnp.where(grasp, reward_grasped, in_place_and_grasped)
        success = (handle_to_target <= 0.12) & inserted
        return reward, dict(success=success, near_object=tcp_to_stick <= 0.03,
                            grasp_success=pad_grasp_success(touch, tcp_opened, stick, episode["obj_init_pos"]),
                            grasp_reward=grasped, in_place_reward=stick_in_place,
                            obj_to_target=handle_to_target, unscaled_reward=reward)
