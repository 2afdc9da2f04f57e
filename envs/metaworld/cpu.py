"""A MetaWorld task on C MuJoCo, as a gymnasium.Env: `envs.make("metaworld/<name>").cpu()`.

It simulates the package's untouched model (no MJX rewrite) with the package's step (mocap action, 5 substeps,
forward pass) and computes observation, reward and info with the task's own JAX functions (jitted, float32), so it
differs from the real `metaworld` env only by float32 rounding of the observation and reward arithmetic.
The hand reset runs in C MuJoCo with the fixture where the reset vector puts it (exactly the package's
goal-observable behaviour). It is a single-env backend; envs/cpu.py (the generic thread-pooled backend) was not in
the repository when this was written.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs.metaworld.base import ACTION_SCALE
from envs.metaworld.physics import FRAME_SKIP, MOCAP_QUAT, touch_forces, view_from_mujoco


class MetaWorldCPUEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, task, randomize_each_episode: bool | None = None):
        self.task = task
        self.randomize_each_episode = (task.randomize_each_episode if randomize_each_episode is None
                                       else bool(randomize_each_episode))
        self.model = copy.deepcopy(task.mj_model)
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(task.obs_low, task.obs_high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.max_path_length = task.episode_length
        self._sample = jax.jit(task.sample_rand_vec)
        self._reset_outputs = jax.jit(task.reset_outputs)
        self._step_outputs = jax.jit(task.step_outputs)
        self._key = jax.random.PRNGKey(task.seed)
        self._prev = None
        self._hand_reset, self._hand_reset_view = task.hand_reset_state, task.hand_reset_view
        self._hand_reset_fixture = task.fixture_position(task.fixed_rand_vec)
        self._episode = None
        self.curr_path_length = 0
        ids = task.ids
        self._pads = (ids.geom["leftpad_geom"], ids.geom["rightpad_geom"])
        self._obj_geom = ids.geom["objGeom"] if task.needs_touch else -1

    def reset_to(self, rand):
        """Reset with a given random reset vector; returns the observation."""
        task, m, d = self.task, self.model, self.data
        fixture = task.fixture_position(rand)
        if not np.array_equal(fixture, self._hand_reset_fixture):
            self._hand_reset, self._hand_reset_view = task.run_hand_reset(fixture)
            self._hand_reset_fixture = fixture
        hr = self._hand_reset
        # Placement in float64 (the package's precision): the MJX backend runs the same function in float32.
        with jax.enable_x64(True):
            placed = self.task.place(jnp.asarray(hr["qpos"], jnp.float64), jnp.asarray(hr["qvel"], jnp.float64),
                                     jnp.asarray(rand, jnp.float64))
            qpos, qvel = (np.asarray(x, np.float64) for x in placed)
            body_pos = fixture
            qpos_after = np.asarray(task.after_reset_obs(jnp.asarray(qpos)), np.float64)
        rand = jnp.asarray(rand, jnp.float32)
        if task.moved_body_id >= 0:
            m.body_pos[task.moved_body_id] = body_pos
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:] = qpos, qvel
        d.qacc_warmstart[:] = hr["qacc_warmstart"]
        d.mocap_pos[:], d.mocap_quat[:], d.ctrl[:] = hr["mocap_pos"], hr["mocap_quat"], hr["ctrl"]
        mujoco.mj_forward(m, d)
        view = self._hand_reset_view if task.stale_reset_view else view_from_mujoco(d)
        episode, obs = self._reset_outputs(view, rand)
        d.qpos[:] = qpos_after  # no forward pass after this, as in the package
        self._episode, self._prev = episode, obs[:18]
        self.curr_path_length = 0
        return np.asarray(obs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        if self.randomize_each_episode:
            self._key, sub = jax.random.split(self._key)
            rand = self._sample(sub)
        else:
            rand = self.task.fixed_rand_vec
        return self.reset_to(rand), {}

    def _touch(self) -> np.ndarray:
        return touch_forces(self.data, self._pads, self._obj_geom)

    def step(self, action):
        task, m, d = self.task, self.model, self.data
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.floating):
            action = action.astype(np.float64)
        # The package scales the action in its own dtype (float32 actions give a float32 offset).
        d.mocap_pos[0] = np.clip(d.mocap_pos[0] + np.clip(action[:3], -1, 1) * ACTION_SCALE,
                                 task.mocap_low, task.mocap_high)
        d.mocap_quat[0] = MOCAP_QUAT
        d.ctrl[:] = [action[3], -action[3]]
        mujoco.mj_step(m, d, nstep=FRAME_SKIP)
        mujoco.mj_rnePostConstraint(m, d)
        mujoco.mj_forward(m, d)
        outputs = self._step_outputs(view_from_mujoco(d), self._prev, self._episode,
                                     np.asarray(action, np.float32), self._touch())
        self._prev = outputs[1]
        obs, _, reward, info = jax.device_get(outputs)
        self.curr_path_length += 1
        truncated = self.curr_path_length >= self.max_path_length
        return np.asarray(obs), float(reward), False, truncated, {k: float(v) for k, v in info.items()}
