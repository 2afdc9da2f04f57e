"""HumanoidBench's H1 ("h1", position control) tasks as pure-JAX envs on two physics backends.

A task = HumanoidBench's own model (package data under assets/, untouched) + jnp functions of a small dict of
physics quantities (`QUANTITIES`): qpos, qvel, the head and feet site positions, the torso's z-z frame entry,
actuator forces, the pelvis subtree (centre-of-mass) velocity and, for h1_pole, whether a pole touches the robot.
Observation, reward, termination and success are computed from these by the *same* JAX code on both backends:

- "mjx": MJX on a rewritten model (`envs.mjx_compat`: feet-only contacts with the floor and terrain, 32-vertex
  hulls; the rewrite record is `task.compat_record`), inside jit.
- "cpu": C MuJoCo on the untouched model, batched over a thread pool behind `jax.pure_callback` (`envs.cpu`).

Conventions from HumanoidBench (humanoid_bench/env.py, tasks.py): action in [-1, 1] mapped linearly to the
actuators' control ranges (float32 bounds, as HumanoidBench's action space), 10 physics steps of 2 ms per control
step, quantities read after `mj_step` (so site positions, frames, forces, sensors and contacts are those of the last
substep's forward pass), reset = keyframe + U(-0.01, 0.01) on every qpos entry, zero velocity, with the base
quaternion normalised (HumanoidBench does not normalise it, but the MuJoCo it runs on, 3.1.6, normalises qpos
quaternions in mj_forward, so its first observation has a unit quaternion; the next state is the same either way).
Truncation at 1000 steps and auto-reset are the wrappers' job (envs.core).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs import mjx_compat
from envs.core import State
from envs.humanoidbench.task_spec import TaskSpec
from envs.warp import WARP_NOT_BUILT

ASSETS = Path(__file__).resolve().parent / "assets"
FRAME_SKIP = 10
EPISODE_LENGTH = 1000
RESET_NOISE = 0.01
SITES = ("head", "left_foot", "right_foot")
FEET = ("left_ankle_link", "right_ankle_link")
NQ, NV, NU = 26, 25, 19


def load_spec(spec: TaskSpec) -> mujoco.MjSpec:
    return mujoco.MjSpec.from_file(str(ASSETS / spec.xml))


@functools.cache
def _load_model_cached(xml: str) -> mujoco.MjModel:
    return mujoco.MjSpec.from_file(str(ASSETS / xml)).compile()


def load_model(spec: TaskSpec, libccd: bool = True) -> mujoco.MjModel:
    """HumanoidBench's model of the task, untouched (a fresh copy).

    libccd: collide convex geoms with libccd, as the MuJoCo HumanoidBench was written for (3.1.6) does, instead of
    MuJoCo >= 3.2's native CCD (sets mjDSBL_NATIVECCD; a simulator option, the model data stay untouched). Measured
    against the real benchmark (h1_walk, random actions): qpos error 3e-4 after 10 steps with libccd, 8e-2 without.
    """
    model = copy.copy(_load_model_cached(spec.xml))
    if libccd:
        model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_NATIVECCD
    return model


def normalize_base_quat(qpos):
    """qpos with its free joint's quaternion (entries 3:7) scaled to unit norm (jnp or np)."""
    xp = jnp if isinstance(qpos, jax.Array) else np
    quat = qpos[3:7] / xp.linalg.norm(qpos[3:7])
    return xp.concatenate([qpos[:3], quat, qpos[7:]])


class Layout:
    """Indices of what the quantities read, for one compiled model (ids agree between untouched and compat)."""

    def __init__(self, model: mujoco.MjModel):
        obj = mujoco.mjtObj
        self.sites = np.array([mujoco.mj_name2id(model, obj.mjOBJ_SITE, s) for s in SITES])
        self.torso = mujoco.mj_name2id(model, obj.mjOBJ_BODY, "torso_link")
        sensor = mujoco.mj_name2id(model, obj.mjOBJ_SENSOR, "pelvis_subtreelinvel")
        adr = int(model.sensor_adr[sensor])
        self.com_vel = np.arange(adr, adr + 3)
        names = [mujoco.mj_id2name(model, obj.mjOBJ_GEOM, i) or "" for i in range(model.ngeom)]
        self.is_pole = np.array(["pole_r" in n for n in names])
        self.floor = 0  # HumanoidBench's pole test excludes contacts involving geom 0, the floor
        pelvis = mujoco.mj_name2id(model, obj.mjOBJ_BODY, "pelvis")
        robot_bodies = {b for b in range(model.nbody) if _is_descendant(model, b, pelvis)}
        self.robot_collision = np.array(
            [
                g
                for g in range(model.ngeom)
                if model.geom_bodyid[g] in robot_bodies and (model.geom_contype[g] or model.geom_conaffinity[g])
            ]
        )


def _is_descendant(model: mujoco.MjModel, body: int, ancestor: int) -> bool:
    while body > 0:
        if body == ancestor:
            return True
        body = int(model.body_parentid[body])
    return False


QUANTITIES = {
    "qpos": (NQ,),
    "qvel": (NV,),
    "sites": (len(SITES), 3),
    "torso_zz": (),
    "actuator_force": (NU,),
    "com_vel": (3,),
    "pole_contact": (),
}


def extract_common(d: Any, layout: Layout) -> dict:
    """The backend-independent quantities; `d` is an MjData (numpy) or an mjx.Data (jnp)."""
    return {
        "qpos": d.qpos,
        "qvel": d.qvel,
        "sites": d.site_xpos[layout.sites],
        "torso_zz": d.xmat[layout.torso].reshape(9)[8],
        "actuator_force": d.actuator_force,
        "com_vel": d.sensordata[layout.com_vel],
    }


def cpu_pole_contact(d: mujoco.MjData, layout: Layout) -> float:
    """HumanoidBench's test: some contact involves a pole and not the floor."""
    if d.ncon == 0 or not layout.is_pole.any():
        return 0.0
    g = d.contact.geom[: d.ncon]
    hit = layout.is_pole[g].any(axis=1) & (g != layout.floor).all(axis=1)
    return float(hit.any())


def cpu_extract(layout: Layout, model: mujoco.MjModel, d: mujoco.MjData) -> dict:
    q = extract_common(d, layout)
    q["pole_contact"] = cpu_pole_contact(d, layout)
    return q


def name_collision_geoms(spec: mujoco.MjSpec) -> list[mjx_compat.Change]:
    """Name the (unnamed) collision geoms of the robot links `<body>_collision` and of the ramps `slide_collision*`."""
    changes = []
    for body in spec.bodies:
        collision = [g for g in body.geoms if g.contype or g.conaffinity]
        if not collision:
            continue
        prefix = "slide_collision" if body.name == "slides" else f"{body.name or 'world'}_collision"
        changes += mjx_compat.name_geoms(spec, collision, prefix)
    return changes


class MjxBackend:
    """MJX on the compat model. `record` lists every change the rewrite made to HumanoidBench's model."""

    def __init__(self, spec: TaskSpec, iterations: int, ls_iterations: int, maxhullvert: int | None):
        from mujoco import mjx

        self._mjx = mjx
        mj_spec = load_spec(spec)
        record = name_collision_geoms(mj_spec)
        feet = [f"{b}_collision" for b in FEET]
        contacts = [(feet, ("floor",) + spec.mjx_terrain_geoms)]
        self.mj_model, changes = mjx_compat.rewrite(
            mj_spec, contacts=contacts, maxhullvert=maxhullvert, iterations=iterations, ls_iterations=ls_iterations,
            visual_mesh_hulls=True,
        )
        self.record = record + changes
        self.model = mjx_compat.check_mjx(self.mj_model)
        self.layout = Layout(self.mj_model)
        # the robot's collision geoms are those named by `name_collision_geoms` (visual meshes now have a contype)
        self.layout.robot_collision = np.array(
            [g for g in self.layout.robot_collision if (self.mj_model.geom(g).name or "").endswith("_collision")]
        )
        self.pole_contact = spec.pole_contact
        if spec.pole_contact:
            m = self.mj_model
            d = mujoco.MjData(m)
            mujoco.mj_forward(m, d)
            poles = np.flatnonzero(self.layout.is_pole)
            axis = d.geom_xmat[poles].reshape(-1, 3, 3)[:, :, 2]  # local z axis in world
            half = m.geom_size[poles, 1] + (m.geom_type[poles] == mujoco.mjtGeom.mjGEOM_CAPSULE) * m.geom_size[poles, 0]
            self.pole_bottom = jnp.asarray(d.geom_xpos[poles] - axis * half[:, None], jnp.float32)
            self.pole_top = jnp.asarray(d.geom_xpos[poles] + axis * half[:, None], jnp.float32)
            self.pole_radius = jnp.asarray(m.geom_size[poles, 0], jnp.float32)
            aabb = m.geom_aabb[self.layout.robot_collision]
            self.box_center = jnp.asarray(aabb[:, :3], jnp.float32)
            self.box_half = jnp.asarray(aabb[:, 3:], jnp.float32)
        self._data0 = mjx.make_data(self.model)

    def init(self, qpos: jax.Array, qvel: jax.Array, qacc_warmstart: jax.Array | None = None):
        d = self._data0.replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32))
        if qacc_warmstart is not None:
            d = d.replace(qacc_warmstart=jnp.asarray(qacc_warmstart, jnp.float32))
        return d

    def quantities(self, d) -> dict:
        q = extract_common(d, self.layout)
        if self.pole_contact:
            from envs.humanoidbench.h1_pole import pole_touches

            g = self.layout.robot_collision
            q["pole_contact"] = pole_touches(
                self.pole_bottom, self.pole_top, self.pole_radius, d.geom_xpos[g], d.geom_xmat[g],
                self.box_center, self.box_half,
            )
        else:
            q["pole_contact"] = jnp.zeros((), jnp.float32)
        return {k: jnp.asarray(v, jnp.float32) for k, v in q.items()}

    def step(self, d, ctrl: jax.Array):
        d = d.replace(ctrl=ctrl)
        d = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, x: self._mjx.step(self.model, x), d)
        return d, self.quantities(d)


class CpuBackend:
    """C MuJoCo on the untouched model (envs.cpu.CpuPhysics)."""

    def __init__(self, spec: TaskSpec, num_threads: int | None, libccd: bool):
        from envs.cpu import CpuPhysics

        self.mj_model = load_model(spec, libccd)
        self.layout = Layout(self.mj_model)
        self.record: list[mjx_compat.Change] = []
        self.physics = CpuPhysics(
            self.mj_model,
            n_substeps=FRAME_SKIP,
            outputs=QUANTITIES,
            extract=functools.partial(cpu_extract, self.layout),
            num_threads=num_threads,
        )

    def init(self, qpos: jax.Array, qvel: jax.Array, qacc_warmstart: jax.Array | None = None):
        return self.physics.init_state(qpos=qpos, qvel=qvel, qacc_warmstart=qacc_warmstart)

    def step(self, state, ctrl: jax.Array):
        return self.physics.step(state, {"ctrl": ctrl})


class H1Task:
    """One HumanoidBench H1 task behind the project's Env protocol (envs.core)."""

    has_success = True
    observation_size = NQ + NV
    action_size = NU
    n_substeps = FRAME_SKIP

    def __init__(
        self,
        spec: TaskSpec,
        physics: str = "mjx",
        *,
        episode_length: int = EPISODE_LENGTH,
        solver_iterations: int = 100,
        ls_iterations: int = 50,
        maxhullvert: int | None = 32,
        num_threads: int | None = None,
        libccd: bool = True,
    ):
        """physics: "mjx" or "cpu". solver_iterations / ls_iterations / maxhullvert: MJX model knobs (defaults:
        HumanoidBench's solver settings; 32-vertex hulls). num_threads, libccd: CPU backend (see `load_model`)."""
        self.spec = spec
        self.libccd = bool(libccd)
        self.name = f"humanoidbench/{spec.name}"
        self.episode_length = int(episode_length)
        self.success_bar = float(spec.success_bar)
        self.physics = physics
        if physics == "mjx":
            self.backend: Any = MjxBackend(spec, solver_iterations, ls_iterations, maxhullvert)
        elif physics == "cpu":
            self.backend = CpuBackend(spec, num_threads, self.libccd)
        else:
            hint = WARP_NOT_BUILT if physics == "warp" else ""
            raise ValueError(f"physics must be 'mjx' or 'cpu', got {physics!r}{hint}")
        self.mj_model = load_model(spec, self.libccd)  # the untouched model (the MJX backend steps a rewrite)
        self.dt = float(self.mj_model.opt.timestep * FRAME_SKIP)
        model = self.backend.mj_model
        if (model.nq, model.nv, model.nu) != (NQ, NV, NU):
            raise AssertionError(f"unexpected model sizes {(model.nq, model.nv, model.nu)}")
        # HumanoidBench's action bounds are float32 (a gymnasium Box); mapping uses them as such.
        untouched = _load_model_cached(spec.xml)
        ctrlrange = np.asarray(untouched.actuator_ctrlrange, np.float32)
        self.ctrl_low = jnp.asarray(ctrlrange[:, 0])
        self.ctrl_high = jnp.asarray(ctrlrange[:, 1])
        self.key_qpos = jnp.asarray(untouched.key_qpos[0], jnp.float32)
        self.term_names = tuple(self._term_names())

    @property
    def compat_record(self) -> list[mjx_compat.Change]:
        return list(self.backend.record)

    @property
    def unwrapped(self) -> H1Task:
        return self

    def _term_names(self):
        zeros = {k: jnp.zeros(s, jnp.float32) for k, s in QUANTITIES.items()}
        _, t = jax.eval_shape(self.spec.reward, zeros)
        return sorted(t)

    def action_to_ctrl(self, action: jax.Array) -> jax.Array:
        return (action + 1.0) / 2.0 * (self.ctrl_high - self.ctrl_low) + self.ctrl_low

    def state_from(self, qpos: jax.Array, qvel: jax.Array, qacc_warmstart: jax.Array | None = None) -> State:
        """A fresh-episode State at the given physics state (used by reset and by the parity tests).

        float64 NumPy values are kept exactly by the CPU backend; `qacc_warmstart` (MuJoCo's solver warm start,
        zero after a reset) makes a replay from a mid-episode MjData state identical to continuing it."""
        pipeline_state = self.backend.init(qpos, qvel, qacc_warmstart)
        zero = jnp.zeros((), jnp.float32)
        info = {name: zero for name in self.term_names}
        info["success"] = zero
        info["task_return"] = zero
        obs = jnp.concatenate([jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32)])
        return State(pipeline_state=pipeline_state, obs=obs, reward=zero, done=zero, info=info)

    def reset(self, key: jax.Array) -> State:
        noise = jax.random.uniform(key, (NQ,), jnp.float32, -RESET_NOISE, RESET_NOISE)
        return self.state_from(normalize_base_quat(self.key_qpos + noise), jnp.zeros((NV,), jnp.float32))

    def step(self, state: State, action: jax.Array) -> State:
        ctrl = self.action_to_ctrl(jnp.asarray(action, jnp.float32))
        pipeline_state, q = self.backend.step(state.pipeline_state, ctrl)
        reward, terms = self.spec.reward(q)
        reward = jnp.asarray(reward, jnp.float32)
        done = jnp.asarray(self.spec.terminated(q), jnp.float32)
        task_return = state.info["task_return"] + reward
        info = dict(state.info)
        info.update({k: jnp.asarray(v, jnp.float32) for k, v in terms.items()})
        info["task_return"] = task_return
        info["success"] = (task_return >= self.success_bar).astype(jnp.float32)
        obs = jnp.concatenate([q["qpos"], q["qvel"]]).astype(jnp.float32)
        return state.replace(pipeline_state=pipeline_state, obs=obs, reward=reward, done=done, info=info)

    def cpu(self, **kwargs):
        """This task on C MuJoCo (untouched model) as a gymnasium.Env; `.unwrapped.model` / `.data` are MuJoCo's."""
        from envs.humanoidbench.gym_env import H1GymEnv

        kwargs.setdefault("libccd", self.libccd)
        kwargs.setdefault("episode_length", self.episode_length)
        return H1GymEnv(self.spec, **kwargs)
