"""Parity harness: the port (MJX or CPU backend) against the real `metaworld` package (run by mw-oracle in its own
environment, envs/metaworld/oracle.py), step by step.

Used by tests/test_metaworld_parity.py and scripts/metaworld_parity.py. Both sides start from the same state (the
port is built with the reference's random reset vector, so object, goal and fixture positions match, and its reset
is compared to the package's). Then both take the same actions (the package's scripted expert acting on the
reference's observation). Two modes:
Backends: "cpu" (the gymnasium env `task.cpu()`), "mjx" (the JAX task on MJX) and "jax-cpu" (the JAX task with
physics="cpu": C MuJoCo behind jax.pure_callback, envs/cpu.py).
- `resync=True` (one-step parity): before every step the port's physics state (qpos, qvel, mocap, solver warm
  start) and previous-frame observation are set to the reference's, so every step measures one step of error
  (physics of the rewritten model in MJX, float32) without the compounding of chaotic contact dynamics.
- `resync=False` (open loop): the port runs on its own; errors accumulate (reported, not asserted tightly).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import envs.metaworld as mw
from envs.metaworld.base import INFO_KEYS

SYNCED = ("qpos", "qvel", "qacc_warmstart", "mocap_pos", "mocap_quat", "ctrl")  # MjData fields the resync copies


@dataclasses.dataclass
class ParityResult:
    name: str
    backend: str
    resync: bool
    steps: int
    reset_obs_err: float
    obs_err: float  # max |obs - obs_ref| over all steps and components
    obs_err_hand: float  # components 0:4 and 18:22 (hand position, gripper)
    obs_err_objects: float  # object slots (4:18, 22:36)
    obs_err_goal: float
    reward_err: float
    term_err: dict
    success_mismatch: int  # steps where the success flags differ
    success_steps_ref: int
    success_steps_port: int
    obs_err_median: float = 0.0
    reward_err_median: float = 0.0
    obs_err_trace: list = dataclasses.field(default_factory=list)  # per-step max |obs - obs_ref|

    def row(self) -> dict:
        return dataclasses.asdict(self)


def _sync_jax_cpu(task, state, ref, tile=lambda x: x):
    d = ref.state
    physics = task.backend.physics.init_state(qpos=np.asarray(d["qpos"], np.float64),
                                              qvel=np.asarray(d["qvel"], np.float64),
                                              qacc_warmstart=np.asarray(d["qacc_warmstart"], np.float64))
    data = dict(physics=jax.tree.map(tile, physics), mocap_pos=tile(jnp.asarray(d["mocap_pos"], jnp.float32)))
    ps = state.pipeline_state.replace(data=data, prev=tile(jnp.asarray(d["prev_obs"], jnp.float32)))
    return state.replace(pipeline_state=ps)


def _sync_mjx(state, ref):
    d = ref.state
    data = state.pipeline_state.data
    data = data.replace(**{field: jnp.asarray(d[field], getattr(data, field).dtype) for field in SYNCED})
    ps = state.pipeline_state.replace(data=data, prev=jnp.asarray(d["prev_obs"], jnp.float32))
    return state.replace(pipeline_state=ps)


def _sync_cpu(cpu, ref):
    for field in SYNCED:
        getattr(cpu.data, field)[:] = ref.state[field]
    cpu._prev = jnp.asarray(ref.state["prev_obs"], jnp.float32)


class _Compiled:
    """jit-compiled reset/step of an MJX task, cached per task instance.

    With `batch=B` the functions are vmapped over B envs (the parity run then drives B identical copies and reads
    env 0): this lets a script reuse one compile for a batch of expert episodes and for the parity run.
    """

    def __init__(self, task, batch: int | None = None):
        self.task, self.batch = task, batch
        if batch is None:
            self.reset_batch, self.step_batch = None, None
            self._reset, self._step = jax.jit(task.reset_to), jax.jit(task.step)
        else:
            self.reset_batch, self.step_batch = jax.jit(jax.vmap(task.reset_to)), jax.jit(jax.vmap(task.step))

    def _tile(self, x):
        return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (self.batch,) + np.shape(x))

    def reset_to(self, rand):
        if self.batch is None:
            return self._reset(jnp.asarray(rand, jnp.float32))
        hand_reset = jax.tree.map(self._tile, (self.task.hand_reset_state, self.task.hand_reset_view))
        return self.reset_batch(self._tile(rand), hand_reset)

    def step(self, state, action):
        if self.batch is None:
            return self._step(state, jnp.asarray(action, jnp.float32))
        return self.step_batch(state, self._tile(action))

    def first(self, x):
        return x if self.batch is None else x[0]

    def sync(self, state, ref):
        if self.task.physics == "cpu":
            return _sync_jax_cpu(self.task, state, ref, tile=(lambda x: x) if self.batch is None else self._tile)
        if self.batch is None:
            return _sync_mjx(state, ref)
        data = state.pipeline_state.data.replace(**{field: self._tile(ref.state[field]) for field in SYNCED})
        ps = state.pipeline_state.replace(data=data, prev=self._tile(ref.state["prev_obs"]))
        return state.replace(pipeline_state=ps)


def _start_port(backend: str, task, compiled: _Compiled | None, rand: np.ndarray):
    """The port reset to `rand`: (gymnasium env or None, compiled functions or None, JAX state or None, obs)."""
    if backend == "cpu":
        port = task.cpu()
        return port, compiled, None, port.reset_to(rand)
    if backend in ("mjx", "jax-cpu"):
        compiled = compiled or _Compiled(task)
        state = compiled.reset_to(rand)
        return None, compiled, state, np.asarray(compiled.first(state.obs))
    raise ValueError(backend)


def _step_compiled(compiled: _Compiled, state, ref, action: np.ndarray):
    """One step of the JAX port (first re-synced to `ref` unless it is None): (state, (obs, reward, info))."""
    if ref is not None:
        state = compiled.sync(state, ref)
    state = compiled.step(state, action)
    obs, reward, info = jax.device_get((compiled.first(state.obs), compiled.first(state.reward),
                                        {k: compiled.first(v) for k, v in state.info.items()}))
    return state, (np.asarray(obs), float(reward), {k: float(v) for k, v in info.items()})


def run_parity(name: str, backend: str = "cpu", steps: int = 100, seed: int = 0, resync: bool = True,
               task=None, compiled: _Compiled | None = None, action_noise: float = 0.0) -> ParityResult:
    """Roll the reference and the port side by side; returns the largest differences seen."""
    ref = mw.reference(name, seed=seed)
    obs_ref, _ = ref.reset()
    rand = np.array(ref.rand_vec)
    policy = mw.expert_policy(name)
    rng = np.random.default_rng(seed)
    if task is None or not np.allclose(task.fixed_rand_vec, rand):
        task = mw.make(name, rand_vec=rand, physics="cpu" if backend == "jax-cpu" else "mjx")
        compiled = None
    port, compiled, state, obs = _start_port(backend, task, compiled, rand)
    reset_err = float(np.abs(obs - obs_ref).max())

    obs_errs, reward_errs = [], []
    hand_err = obj_err = goal_err = 0.0
    term_err = {k: 0.0 for k in INFO_KEYS}
    mismatch = succ_ref = succ_port = 0
    hand_idx = np.r_[0:4, 18:22]
    obj_idx = np.r_[4:18, 22:36]
    for _ in range(steps):
        action = policy.get_action(obs_ref)
        if action_noise:
            action = np.clip(action + action_noise * rng.standard_normal(4), -1, 1).astype(np.float32)
        if backend == "cpu":
            if resync:
                _sync_cpu(port, ref)
            obs, reward, _, _, info = port.step(action)
        else:
            state, (obs, reward, info) = _step_compiled(compiled, state, ref if resync else None, action)
        obs_ref, reward_ref, _, _, info_ref = ref.step(action)
        diff = np.abs(obs - obs_ref)
        obs_errs.append(float(diff.max()))
        hand_err = max(hand_err, float(diff[hand_idx].max()))
        obj_err = max(obj_err, float(diff[obj_idx].max()))
        goal_err = max(goal_err, float(diff[36:].max()))
        reward_errs.append(abs(float(reward) - float(reward_ref)))
        for k in INFO_KEYS:
            term_err[k] = max(term_err[k], abs(float(info[k]) - float(info_ref[k])))
        mismatch += int(bool(info["success"]) != bool(info_ref["success"]))
        succ_ref += int(bool(info_ref["success"]))
        succ_port += int(bool(info["success"]))
    ref.close()
    return ParityResult(name=name, backend=backend, resync=resync, steps=steps, reset_obs_err=reset_err,
                        obs_err=max(obs_errs), obs_err_hand=hand_err, obs_err_objects=obj_err, obs_err_goal=goal_err,
                        reward_err=max(reward_errs), term_err=term_err, success_mismatch=mismatch,
                        success_steps_ref=succ_ref, success_steps_port=succ_port,
                        obs_err_median=float(np.median(obs_errs)), reward_err_median=float(np.median(reward_errs)),
                        obs_err_trace=obs_errs)
