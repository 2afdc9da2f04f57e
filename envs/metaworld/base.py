"""The Sawyer base shared by the MetaWorld tasks: mocap-driven end effector, gripper, hand reset, observation.

Facts from metaworld 3.1.1 (sawyer_xyz_env.py), re-implemented in JAX:
- Action (4,) in [-1, 1] (clipped): xyz moves the mocap body by action / 100 m, clipped to the task's hand bounds,
  mocap quaternion fixed at (1, 0, 1, 0); the 4th component drives the two gripper actuators with (+a, -a).
  Physics: 5 substeps of 2.5 ms (the XML's Newton solver), then a forward pass for the observation.
- Reset: the package resets MjData, drives the mocap to `hand_init_pos` for 50 env steps with the gripper open,
  then places objects / the goal from the task's random reset vector. The hand reset starts from the same state
  with the same targets every time and does not touch the objects, so its result is a constant of the task: it is
  run once, in C MuJoCo on the package's own model, at construction (`hand_reset_state`), and every JAX reset
  starts from it. `SawyerTask.simulate_hand_reset` runs the same 50 steps in MJX (used by the tests to check it).
- Observation (39,) = current 18 (hand pos, gripper opening |right claw - left claw| / 0.1 clipped to [0, 1],
  object slots pos+quat zero-padded to 14) + previous step's 18 (= current at reset) + goal pos (3,). After a step
  the observation is clipped to the observation box (hand to the hand space, gripper to [-1, 1], goal to the
  task's goal space) and the reward is computed from the clipped observation; the reset observation is not clipped.
- Physics: `task.backend`, built once from `physics` (physics.py): `MjxBackend` (the rewritten model, model.py) or
  `CpuBackend` (C MuJoCo on the package's model behind jax.pure_callback, envs/cpu.py). `reset_to` and `step` call
  the same backend methods either way, and both backends feed the same view (body/site/geom frames, qpos, pad
  contact forces) to the same observation and reward functions.
- Reset configuration: the package's goal-observable constructors sample the random reset vector once per
  instance (`_freeze_rand_vec`); here that is the default (`randomize_each_episode=False`: the vector is drawn
  once from `seed` at construction and every episode of every env uses it). `randomize_each_episode=True` draws
  a new vector from the reset key every episode (the package's unfrozen behaviour).
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from envs import mjx_compat
from envs.core import State
from envs.metaworld.model import load_models
from envs.metaworld.physics import (
    FRAME_SKIP,
    HAND_RESET_STEPS,
    MOCAP_QUAT,
    CpuBackend,
    MjxBackend,
    view_from_mujoco,
)
from envs.warp import WARP_NOT_BUILT

HAND_SPACE_LOW = np.array([-0.525, 0.348, -0.0525])
HAND_SPACE_HIGH = np.array([0.525, 1.025, 0.7])
ACTION_SCALE = 1.0 / 100.0
INFO_KEYS = ("success", "near_object", "grasp_success", "grasp_reward", "in_place_reward", "obj_to_target",
             "unscaled_reward")


@struct.dataclass
class SawyerPipelineState:
    """What a MetaWorld env carries between steps (under `State.pipeline_state`)."""

    data: Any  # the backend's physics state: mjx.Data (MjxBackend) or a dict of arrays (CpuBackend)
    body_pos: jax.Array  # (3,) position of the task's movable fixture body (box, faucet, window, ...), or zeros
    prev: jax.Array  # (18,) previous observation frame (unclipped)
    episode: dict  # per-episode constants: rand_vec, target_pos, obj_init_pos, init_tcp, ...


class SawyerTask:
    """A MetaWorld v3 task on MJX or C MuJoCo (`backend`). Subclasses set the class constants and the task hooks."""

    # --- set by subclasses -------------------------------------------------------------------------------------
    short_name: str = ""  # e.g. "hammer-v3"
    xml: str = ""
    hand_low: tuple = (-0.5, 0.40, 0.05)
    hand_high: tuple = (0.5, 1.0, 0.5)
    hand_init_pos: tuple = (0.0, 0.6, 0.2)
    rand_low: tuple = ()
    rand_high: tuple = ()
    goal_low: tuple = ()
    goal_high: tuple = ()
    min_obj_goal_xy_distance: float | None = None  # rejection rule of the reset sampler (rand[:2] vs rand[3:5])
    moved_body: str | None = None  # fixture body whose model position the reset sets (model.body(...).pos)
    needs_touch: bool = False  # the info's grasp_success reads pad/object contact forces
    stale_reset_view: bool = False  # the package's reset reads kinematics left over from the hand reset
    fixed_model_body_pos: dict = {}  # bodies the package's reset always puts at one place (set once in the model)

    observation_size = 39
    action_size = 4
    has_success = True
    n_substeps = FRAME_SKIP

    def __init__(self, episode_length: int = 500, randomize_each_episode: bool = False, seed: int = 0,
                 rand_vec=None, physics: str = "mjx", num_threads: int | None = None):
        """physics: "mjx" (the rewritten model in MJX) or "cpu" (C MuJoCo on the package's model, batched on a
        thread pool behind jax.pure_callback: envs.cpu.CpuPhysics). num_threads: CPU backend threads."""
        if physics not in ("mjx", "cpu"):
            hint = WARP_NOT_BUILT if physics == "warp" else ""
            raise ValueError(f"physics must be 'mjx' or 'cpu', got {physics!r}{hint}")
        if physics == "cpu" and randomize_each_episode and self.moved_body:
            raise NotImplementedError(
                f"{self.short_name}: physics='cpu' steps one model for all envs, so its fixture ({self.moved_body}) "
                "cannot move per episode; use randomize_each_episode=False or physics='mjx'")
        self.physics = physics
        self.name = f"metaworld/{self.short_name}"
        self.episode_length = int(episode_length)
        self.randomize_each_episode = bool(randomize_each_episode)
        self.seed = int(seed)
        mjx_mj_model = self._load_models()
        self._init_spaces()
        if rand_vec is None:
            rand_vec = self.sample_rand_vec(jax.random.PRNGKey(self.seed))
        self.fixed_rand_vec = np.asarray(rand_vec, np.float64)
        if self.fixed_rand_vec.shape != (len(self.rand_low),):
            raise ValueError(f"rand_vec must have shape ({len(self.rand_low)},), got {self.fixed_rand_vec.shape}")
        self._init_constants()
        self.backend: MjxBackend | CpuBackend = self._make_backend(mjx_mj_model, num_threads)

    def _load_models(self) -> mujoco.MjModel:
        """Load the package's model (`mj_model`) and its MJX rewrite (returned), and look up the fixture body."""
        self.mj_model, mjx_mj_model, compat = load_models(self.xml)
        self.compat_record: list[mjx_compat.Change] = compat.changes()
        for body, pos in self.fixed_model_body_pos.items():
            self.mj_model.body(body).pos = pos
            mjx_mj_model.body(body).pos = pos
        m = self.mj_model
        self.dt = float(m.opt.timestep * FRAME_SKIP)
        self.ids = _Ids(m)
        self.moved_body_id = m.body(self.moved_body).id if self.moved_body else -1
        if self.moved_body_id >= 0 and m.body_parentid[self.moved_body_id] != 0:
            raise ValueError(f"{self.short_name}: the fixture body {self.moved_body!r} must be a child of the world")
        # The fixture body's subtree (bodies, and the sites and geoms on them): what moves with it. A child of the
        # world, the fixture is the root body of its subtree.
        self._fixture_bodies = (m.body_rootid == self.moved_body_id) & (self.moved_body_id >= 0)
        self._fixture_sites = self._fixture_bodies[m.site_bodyid]
        self._fixture_geoms = self._fixture_bodies[m.geom_bodyid]
        return mjx_mj_model

    def _init_spaces(self) -> None:
        """The mocap bounds, goal space and observation box (float64 bounds, float32 box, as the package's)."""
        self.mocap_low = np.array(self.hand_low, np.float64)
        self.mocap_high = np.array(self.hand_high, np.float64)
        self.goal_space_low = np.array(self.goal_low, np.float64)
        self.goal_space_high = np.array(self.goal_high, np.float64)
        self.obs_low = np.concatenate([HAND_SPACE_LOW, [-1.0], np.full(14, -np.inf), HAND_SPACE_LOW, [-1.0],
                                       np.full(14, -np.inf), self.goal_space_low]).astype(np.float32)
        self.obs_high = np.concatenate([HAND_SPACE_HIGH, [1.0], np.full(14, np.inf), HAND_SPACE_HIGH, [1.0],
                                        np.full(14, np.inf), self.goal_space_high]).astype(np.float32)

    def _make_backend(self, mjx_mj_model: mujoco.MjModel, num_threads: int | None) -> MjxBackend | CpuBackend:
        pads = (self.ids.geom["leftpad_geom"], self.ids.geom["rightpad_geom"])
        obj = self.ids.geom["objGeom"] if self.needs_touch else -1
        if self.physics == "mjx":
            return MjxBackend(mjx_mj_model, self.moved_body_id, pads, obj)
        m = copy.deepcopy(self.mj_model)
        if self.moved_body_id >= 0:  # one model for all envs: the fixture where the fixed configuration puts it
            m.body_pos[self.moved_body_id] = self.fixture_position(self.fixed_rand_vec)
        return CpuBackend(m, pads, obj, num_threads)

    # --- constants of the task (C MuJoCo, once) ----------------------------------------------------------------
    def fixture_position(self, rand) -> np.ndarray:
        """Where the reset puts the task's movable fixture body for a random reset vector (float64)."""
        if self.moved_body_id < 0:
            return np.zeros(3)
        with jax.enable_x64(True):
            return np.asarray(self.fixture(jnp.asarray(rand, jnp.float64)), np.float64)

    def run_hand_reset(self, fixture_pos) -> tuple[dict, dict]:
        """The package's 50-step hand reset in C MuJoCo, with the fixture body at `fixture_pos`.

        Returns the state to start episodes from and the kinematics at its end. The fixture's position matters
        only where an object rests on it during the hand reset (peg-unplug-side's plug: its leftover angular
        velocity, which the package's placement does not zero).
        """
        m = copy.deepcopy(self.mj_model)
        if self.moved_body_id >= 0:
            m.body_pos[self.moved_body_id] = fixture_pos
        d = mujoco.MjData(m)
        for _ in range(HAND_RESET_STEPS):
            d.mocap_pos[0] = self.hand_init_pos
            d.mocap_quat[0] = MOCAP_QUAT
            d.ctrl[:] = [-1.0, 1.0]
            mujoco.mj_step(m, d, nstep=FRAME_SKIP)
            mujoco.mj_rnePostConstraint(m, d)
        state = dict(qpos=d.qpos.copy(), qvel=d.qvel.copy(), qacc_warmstart=d.qacc_warmstart.copy(),
                     mocap_pos=d.mocap_pos.copy(), mocap_quat=d.mocap_quat.copy(), ctrl=d.ctrl.copy())
        return state, view_from_mujoco(d)

    def _init_constants(self) -> None:
        # The hand reset runs once, with the fixture where the (fixed) configuration puts it: in the package's
        # goal-observable envs every reset after construction runs it with the fixture there.
        self.hand_reset_state, self.hand_reset_view = self.run_hand_reset(self.fixture_position(self.fixed_rand_vec))
        self.init_tcp = np.asarray(self.tcp_center(self.hand_reset_view), np.float64)

    # --- task hooks --------------------------------------------------------------------------------------------
    def place(self, qpos, qvel, rand):
        """Object placement from the random reset vector: returns (qpos, qvel)."""
        raise NotImplementedError

    def fixture(self, rand):
        """Position of the movable fixture body (`moved_body`) for a random reset vector (zeros if none)."""
        return jnp.zeros(3, jnp.asarray(rand).dtype)

    def episode_constants(self, view, rand) -> dict:
        """Per-episode constants (target_pos, obj_init_pos, ...) from the kinematics right after placement."""
        raise NotImplementedError

    def after_reset_obs(self, qpos):
        """State changes the package makes after its reset observation is taken (window-close only)."""
        return qpos

    def objects(self, view) -> tuple[list, list]:
        """Object positions (list of (3,)) and quaternions (list of (4,)) for the observation."""
        raise NotImplementedError

    def reward(self, obs, view, episode, action, touch) -> tuple[jax.Array, dict]:
        """(reward, info terms incl. success) from the clipped observation and the physics view."""
        raise NotImplementedError

    # --- shared pieces ------------------------------------------------------------------------------------------
    def tcp_center(self, view):
        return (view["site_xpos"][self.ids.site["rightEndEffector"]]
                + view["site_xpos"][self.ids.site["leftEndEffector"]]) / 2.0

    def pads(self, view):
        """Left and right pad body positions (the package's `get_body_com` returns the body frame, `xpos`)."""
        return view["xpos"][self.ids.body["leftpad"]], view["xpos"][self.ids.body["rightpad"]]

    def caging(self, action, obj_pos, view, episode, **kwargs):
        from envs.metaworld.reward_utils import gripper_caging_reward

        left_pad, right_pad = self.pads(view)
        return gripper_caging_reward(action, obj_pos, left_pad=left_pad, right_pad=right_pad,
                                     tcp=self.tcp_center(view), obj_init_pos=episode["obj_init_pos"],
                                     init_tcp=episode["init_tcp"], **kwargs)

    def sample_rand_vec(self, key):
        """A draw from the task's random reset space (with the package's rejection rule, if any)."""
        low = jnp.asarray(self.rand_low, jnp.float32)
        high = jnp.asarray(self.rand_high, jnp.float32)

        def draw(k):
            return jax.random.uniform(k, low.shape, jnp.float32, low, high)

        if self.min_obj_goal_xy_distance is None:
            return draw(key)
        limit = self.min_obj_goal_xy_distance

        def too_close(carry):
            _, vec = carry
            return jnp.linalg.norm(vec[:2] - vec[3:5]) < limit

        def redraw(carry):
            k, _ = carry
            k, sub = jax.random.split(k)
            return k, draw(sub)

        key, sub = jax.random.split(key)
        return jax.lax.while_loop(too_close, redraw, (key, draw(sub)))[1]

    def current_frame(self, view):
        """The 18-dim current part of the observation."""
        hand = view["xpos"][self.ids.body["hand"]]
        claws = view["xpos"][self.ids.body["rightclaw"]] - view["xpos"][self.ids.body["leftclaw"]]
        gripper = jnp.clip(jnp.linalg.norm(claws) / 0.1, 0.0, 1.0)
        positions, quats = self.objects(view)
        parts = [jnp.concatenate([jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)])
                 for p, q in zip(positions, quats)]
        objs = jnp.concatenate(parts)
        objs = jnp.pad(objs, (0, 14 - objs.shape[0]))
        return jnp.concatenate([jnp.asarray(hand, jnp.float32), gripper[None].astype(jnp.float32), objs])

    def observe(self, view, prev, episode, clip: bool):
        current = self.current_frame(view)
        obs = jnp.concatenate([current, prev, jnp.asarray(episode["target_pos"], jnp.float32)])
        if clip:
            obs = jnp.clip(obs, self.obs_low, self.obs_high)
        return obs, current

    def reset_outputs(self, view, rand) -> tuple[dict, jax.Array]:
        """The episode constants and the reset observation (previous frame = current frame, unclipped)."""
        episode = self.episode_constants(view, rand)
        episode = {k: jnp.asarray(v, jnp.float32) for k, v in episode.items()}
        episode["rand_vec"] = jnp.asarray(rand, jnp.float32)
        episode.setdefault("init_tcp", jnp.asarray(self.init_tcp, jnp.float32))
        current = self.current_frame(view)
        obs, _ = self.observe(view, current, episode, clip=False)
        return episode, obs

    def move_fixture(self, view, body_pos):
        """The kinematics `view` with the fixture body's subtree translated so that the body sits at `body_pos`.

        For a stale reset view (window-close): the package reads kinematics left over from a hand reset that ran
        with the fixture at the fixed configuration's place; with a fixture placed per episode the same hand reset
        (which never touches it) would have left this. The fixture's parent is the world frame (checked at init).
        """
        if self.moved_body_id < 0:
            return view
        delta = jnp.asarray(body_pos, jnp.float32) - view["xpos"][self.moved_body_id]
        moved = dict(view)
        for key, mask in (("xpos", self._fixture_bodies), ("site_xpos", self._fixture_sites),
                          ("geom_xpos", self._fixture_geoms)):
            moved[key] = view[key] + jnp.asarray(mask, jnp.float32)[:, None] * delta
        return moved

    def step_outputs(self, view, prev, episode, action, touch):
        obs, current = self.observe(view, prev, episode, clip=True)
        reward, info = self.reward(obs, view, episode, action, touch)
        info = {k: jnp.asarray(info[k], jnp.float32) for k in INFO_KEYS}
        return obs, current, jnp.asarray(reward, jnp.float32), info

    def mocap_target(self, mocap_pos, action):
        a = jnp.clip(action[:3], -1.0, 1.0)
        return jnp.clip(mocap_pos + a * ACTION_SCALE, self.mocap_low, self.mocap_high)

    # --- the Env protocol (physics in `self.backend`: envs/metaworld/physics.py) ------------------------------
    def reset_to(self, rand, hand_reset: tuple[dict, dict] | None = None) -> State:
        """Reset with a given random reset vector (pure; what `reset` calls).

        `hand_reset` optionally replaces the task's precomputed hand-reset (state, view) pair, e.g. by
        `run_hand_reset(fixture_position(rand))` for a configuration other than the fixed one (only
        peg-unplug-side's plug notices the difference); the arrays may carry a batch axis under vmap.
        """
        hr, hr_view = hand_reset if hand_reset is not None else (self.hand_reset_state, self.hand_reset_view)
        qpos, qvel = self.place(jnp.asarray(hr["qpos"], jnp.float32), jnp.asarray(hr["qvel"], jnp.float32), rand)
        body_pos = self.fixture(rand)
        data, view = self.backend.start(hr, qpos, qvel, body_pos)
        if self.stale_reset_view:
            view = self.move_fixture({k: jnp.asarray(v, jnp.float32) for k, v in hr_view.items()}, body_pos)
        episode, obs = self.reset_outputs(view, rand)
        data = self.backend.set_qpos(data, self.after_reset_obs(qpos))
        pipeline = SawyerPipelineState(data=data, body_pos=jnp.asarray(body_pos, jnp.float32),
                                       prev=obs[:18], episode=episode)
        info = {k: jnp.zeros((), jnp.float32) for k in INFO_KEYS}
        return State(pipeline_state=pipeline, obs=obs, reward=jnp.zeros((), jnp.float32),
                     done=jnp.zeros((), jnp.float32), info=info)

    def reset(self, key: jax.Array) -> State:
        if self.randomize_each_episode:
            rand = self.sample_rand_vec(key)
        else:
            rand = jnp.asarray(self.fixed_rand_vec, jnp.float32)
        return self.reset_to(rand)

    def step(self, state: State, action: jax.Array) -> State:
        ps: SawyerPipelineState = state.pipeline_state
        action = jnp.asarray(action, jnp.float32)
        mocap = self.backend.mocap_pos(ps.data)
        mocap = mocap.at[0].set(self.mocap_target(mocap[0], action))
        ctrl = jnp.stack([action[3], -action[3]])
        data, view, touch = self.backend.step(ps.data, ps.body_pos, mocap, ctrl)
        obs, current, reward, info = self.step_outputs(view, ps.prev, ps.episode, action, touch)
        pipeline = ps.replace(data=data, prev=current)
        return State(pipeline_state=pipeline, obs=obs, reward=reward, done=jnp.zeros((), jnp.float32), info=info)

    def simulate_hand_reset(self):
        """The package's 50-step hand reset, run in MJX from the model's initial state (returns mjx.Data)."""
        return self.backend.hand_reset(self.hand_init_pos)

    # --- other backends ----------------------------------------------------------------------------------------
    def cpu(self, **kwargs):
        """This task on C MuJoCo with the package's untouched model, as a gymnasium.Env."""
        from envs.metaworld.cpu import MetaWorldCPUEnv

        return MetaWorldCPUEnv(self, **kwargs)


class _Ids:
    """Name -> id lookups (bodies, sites, geoms) of a model, looked up lazily by name."""

    def __init__(self, model: mujoco.MjModel):
        self.body = _Lookup(model, mujoco.mjtObj.mjOBJ_BODY)
        self.site = _Lookup(model, mujoco.mjtObj.mjOBJ_SITE)
        self.geom = _Lookup(model, mujoco.mjtObj.mjOBJ_GEOM)
        self.joint = _Lookup(model, mujoco.mjtObj.mjOBJ_JOINT)


class _Lookup:
    """Name -> id of one kind of MuJoCo object, memoised per instance (a functools.cache on the method would keep
    every instance, and its model, alive in one module-wide cache)."""

    def __init__(self, model, kind):
        self._model, self._kind = model, kind
        self._ids: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        if name not in self._ids:
            idx = mujoco.mj_name2id(self._model, self._kind, name)
            if idx < 0:
                raise KeyError(f"no {self._kind} named {name!r}")
            self._ids[name] = int(idx)
        return self._ids[name]
