"""A HumanoidBench H1 task on C MuJoCo as a plain `gymnasium.Env` (the untouched model, one environment).

Same conventions as HumanoidBench's own env: `reset(seed=s)` draws the reset noise exactly as HumanoidBench does
(`np.random.default_rng(s).uniform(-0.01, 0.01, nq)` added to the keyframe), `step(a)` maps a in [-1, 1] to the
control ranges, runs 10 `mj_step`s, and computes reward, terms, termination and success with the task's JAX
functions (the same code the JAX env uses). `unwrapped.model` / `unwrapped.data` are the MuJoCo handles.
"""

from __future__ import annotations

import gymnasium
import jax
import mujoco
import numpy as np

from envs.humanoidbench import h1
from envs.humanoidbench.task_spec import TaskSpec


class H1GymEnv(gymnasium.Env):
    metadata = {"render_modes": []}

    def __init__(self, spec: TaskSpec, episode_length: int = h1.EPISODE_LENGTH, libccd: bool = True):
        self.spec = spec
        self.model = h1.load_model(spec, libccd)
        self.data = mujoco.MjData(self.model)
        self.layout = h1.Layout(self.model)
        self.episode_length = int(episode_length)
        self.action_low = self.model.actuator_ctrlrange[:, 0].astype(np.float32)
        self.action_high = self.model.actuator_ctrlrange[:, 1].astype(np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (h1.NU,), np.float32)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (h1.NQ + h1.NV,), np.float64)
        self._reward = jax.jit(spec.reward)
        self._terminated = jax.jit(spec.terminated)
        self._return = 0.0
        self._steps = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).copy()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Set the physics state (as HumanoidBench's set_state: then mj_forward); returns the observation."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        return self._obs()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetDataKeyframe(m, d, 0)
        mujoco.mj_forward(m, d)
        qpos = d.qpos.copy() + self.np_random.uniform(-h1.RESET_NOISE, h1.RESET_NOISE, size=m.nq)
        qpos = h1.normalize_base_quat(qpos)  # what MuJoCo 3.1.6 (HumanoidBench's) does in mj_forward
        obs = self.set_state(qpos, d.qvel.copy())
        self._return = 0.0
        self._steps = 0
        return obs, {}

    def quantities(self) -> dict:
        """The task's physics quantities at the current MjData (numpy, float32)."""
        q = h1.cpu_extract(self.layout, self.model, self.data)
        return {k: np.asarray(v, np.float32) for k, v in q.items()}

    def step(self, action):
        action = np.asarray(action, np.float64)
        self.data.ctrl[:] = (action + 1) / 2 * (self.action_high - self.action_low) + self.action_low
        mujoco.mj_step(self.model, self.data, h1.FRAME_SKIP)
        q = self.quantities()
        reward, terms = self._reward(q)
        reward = float(reward)
        terminated = bool(self._terminated(q))
        self._return += reward
        self._steps += 1
        info = {k: float(v) for k, v in terms.items()}
        info["success"] = float(self._return >= self.spec.success_bar)
        truncated = self._steps >= self.episode_length and not terminated
        return self._obs(), reward, terminated, truncated, info
