"""The physics under a MetaWorld task: the quantities its observation and reward read, and two backends that step it.

Both backends have the shape of HumanoidBench's (envs/humanoidbench/h1.py): the task builds one at construction
(`task.backend`) and its traced `reset_to` / `step` call the same four methods on either:

- `start(hand_reset, qpos, qvel, body_pos) -> (data, view)`: a fresh episode's physics state at (qpos, qvel) with
  the hand reset's mocap, gripper control and solver warm start, and the kinematics `view` there;
- `set_qpos(data, qpos) -> data`: the state with new joint positions and no forward pass (window-close's slide);
- `mocap_pos(data) -> (nmocap, 3)`: where the mocap bodies are;
- `step(data, body_pos, mocap_pos, ctrl) -> (data, view, touch)`: `FRAME_SKIP` substeps under the new mocap target
  and gripper control, then the view after a forward pass and the pads' contact forces on the object.

`MjxBackend` runs MJX on the rewritten model (`model.py`), with the fixture body at `body_pos` in every call (so it
may move per episode); `CpuBackend` runs C MuJoCo on the package's model behind `jax.pure_callback`
(`envs.cpu.CpuPhysics`), one model for all envs with the fixture where the fixed configuration puts it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

FRAME_SKIP = 5
MOCAP_QUAT = np.array([1.0, 0.0, 1.0, 0.0])
HAND_RESET_STEPS = 50


def view_from_mjx(data: Any) -> dict:
    """The physics quantities the tasks read, from an mjx.Data."""
    return dict(xpos=data.xpos, xquat=data.xquat, xmat=data.xmat, site_xpos=data.site_xpos,
                geom_xpos=data.geom_xpos, geom_xmat=data.geom_xmat, qpos=data.qpos)


def view_from_mujoco(data: mujoco.MjData) -> dict:
    """The same quantities from a C MuJoCo MjData (copies)."""
    return dict(xpos=data.xpos.copy(), xquat=data.xquat.copy(),
                xmat=data.xmat.reshape(-1, 3, 3).copy(), site_xpos=data.site_xpos.copy(),
                geom_xpos=data.geom_xpos.copy(), geom_xmat=data.geom_xmat.reshape(-1, 3, 3).copy(),
                qpos=data.qpos.copy())


def touch_forces(data: mujoco.MjData, pads: tuple[int, int], obj: int) -> np.ndarray:
    """The package's `touching_object` sums: first-row constraint force of (pad, object) contacts, per pad."""
    out = np.zeros(2)
    if obj < 0:
        return out.astype(np.float32)
    for i in range(data.ncon):
        c = data.contact[i]
        pair = (c.geom1, c.geom2)
        if obj not in pair:
            continue
        for side, pad in enumerate(pads):
            if pad in pair:
                out[side] += data.efc_force[c.efc_address]
    return out.astype(np.float32)


class MjxBackend:
    """MJX on the rewritten model `mj_model`; `moved_body` (-1: none) is the fixture body placed per episode.

    pads, obj: geom ids of the two gripper pads and of the object whose contact forces `step` sums (obj -1: none
    read, zeros)."""

    def __init__(self, mj_model: mujoco.MjModel, moved_body: int, pads: tuple[int, int], obj: int):
        from mujoco import mjx

        self._mjx = mjx
        self.mj_model = mj_model
        self.model = mjx.put_model(mj_model)  # built here: never inside a trace
        self.moved_body, self.pads, self.obj = moved_body, pads, obj

    def model_with(self, body_pos: jax.Array) -> Any:
        """The MJX model with the fixture body at `body_pos`."""
        if self.moved_body < 0:
            return self.model
        return self.model.replace(body_pos=self.model.body_pos.at[self.moved_body].set(body_pos))

    def start(self, hand_reset: dict, qpos: jax.Array, qvel: jax.Array, body_pos: jax.Array) -> tuple[Any, dict]:
        base = self._mjx.make_data(self.model)
        base = base.replace(qacc_warmstart=jnp.asarray(hand_reset["qacc_warmstart"], base.qacc_warmstart.dtype),
                            mocap_pos=jnp.asarray(hand_reset["mocap_pos"], base.mocap_pos.dtype),
                            mocap_quat=jnp.asarray(hand_reset["mocap_quat"], base.mocap_quat.dtype),
                            ctrl=jnp.asarray(hand_reset["ctrl"], base.ctrl.dtype))
        data = self._kinematics(self.model_with(body_pos), base.replace(qpos=qpos, qvel=qvel))
        return data, view_from_mjx(data)

    def set_qpos(self, data: Any, qpos: jax.Array) -> Any:
        return data.replace(qpos=qpos)

    def mocap_pos(self, data: Any) -> jax.Array:
        return data.mocap_pos

    def step(self, data: Any, body_pos: jax.Array, mocap_pos: jax.Array, ctrl: jax.Array) -> tuple[Any, dict, Any]:
        model = self.model_with(body_pos)
        quat = jnp.broadcast_to(jnp.asarray(MOCAP_QUAT, data.mocap_quat.dtype), data.mocap_quat.shape)
        data = data.replace(mocap_pos=mocap_pos, mocap_quat=quat, ctrl=ctrl.astype(data.ctrl.dtype))
        data = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: self._mjx.step(model, d), data)
        # Contact forces of the last substep (the package reads them after a fresh forward pass; a second copy of
        # the collision and solver code would double the compile time for one info flag).
        touch = self._touch(data) if self.obj >= 0 else jnp.zeros(2)
        data = self._kinematics(model, data)
        return data, view_from_mjx(data), touch

    def hand_reset(self, hand_init_pos: tuple) -> Any:
        """The package's 50-step hand reset, run in MJX from the model's initial state (returns mjx.Data)."""
        data = self._mjx.make_data(self.model)
        data = data.replace(mocap_pos=data.mocap_pos.at[0].set(jnp.asarray(hand_init_pos, jnp.float32)),
                            mocap_quat=data.mocap_quat.at[0].set(jnp.asarray(MOCAP_QUAT, jnp.float32)),
                            ctrl=jnp.array([-1.0, 1.0], data.ctrl.dtype))
        return jax.lax.fori_loop(0, HAND_RESET_STEPS * FRAME_SKIP, lambda _, d: self._mjx.step(self.model, d), data)

    def _kinematics(self, model: Any, data: Any) -> Any:
        return self._mjx.com_pos(model, self._mjx.kinematics(model, data))

    def _touch(self, data: Any) -> jax.Array:
        """Summed first-row contact force of (left pad, object) and (right pad, object) contacts."""
        contact = data.contact
        if contact.geom.shape[0] == 0:
            return jnp.zeros(2)
        addr = contact.efc_address
        force = jnp.where(addr >= 0, data.efc_force[jnp.maximum(addr, 0)], 0.0)
        g1, g2 = contact.geom[:, 0], contact.geom[:, 1]

        def between(pad: int) -> jax.Array:
            return ((g1 == pad) & (g2 == self.obj)) | ((g2 == pad) & (g1 == self.obj))

        return jnp.stack([jnp.sum(jnp.where(between(pad), force, 0.0)) for pad in self.pads])


class CpuBackend:
    """C MuJoCo on `mj_model` (the package's, fixture in place), batched on a thread pool (envs.cpu.CpuPhysics).

    The physics state is `dict(physics=<CpuPhysics state>, mocap_pos=(nmocap, 3))`."""

    def __init__(self, mj_model: mujoco.MjModel, pads: tuple[int, int], obj: int, num_threads: int | None):
        from envs.cpu import CpuPhysics

        m = self.mj_model = mj_model
        outputs = dict(xpos=(m.nbody, 3), xquat=(m.nbody, 4), xmat=(m.nbody, 3, 3), site_xpos=(m.nsite, 3),
                       geom_xpos=(m.ngeom, 3), geom_xmat=(m.ngeom, 3, 3), qpos=(m.nq,), touch=(2,))

        def extract(model: mujoco.MjModel, data: mujoco.MjData) -> dict:
            mujoco.mj_forward(model, data)  # the package reads everything after a forward pass of the new state
            out = view_from_mujoco(data)
            out["touch"] = touch_forces(data, pads, obj)
            return out

        self.physics = CpuPhysics(m, n_substeps=FRAME_SKIP, outputs=outputs, extract=extract,
                                  input_fields=("ctrl", "mocap_pos", "mocap_quat"), num_threads=num_threads)

    def start(self, hand_reset: dict, qpos: jax.Array, qvel: jax.Array, body_pos: jax.Array) -> tuple[dict, dict]:
        inputs = dict(ctrl=jnp.asarray(hand_reset["ctrl"], jnp.float32),
                      mocap_pos=jnp.asarray(hand_reset["mocap_pos"], jnp.float32).reshape(-1),
                      mocap_quat=jnp.asarray(hand_reset["mocap_quat"], jnp.float32).reshape(-1))
        qacc = jnp.asarray(hand_reset["qacc_warmstart"], jnp.float32)
        state = self.physics.init_state(qpos=qpos, qvel=qvel, qacc_warmstart=qacc)
        view = {k: v for k, v in self.physics.forward(state, inputs).items() if k != "touch"}
        return dict(physics=state, mocap_pos=jnp.asarray(hand_reset["mocap_pos"], jnp.float32)), view

    def set_qpos(self, data: dict, qpos: jax.Array) -> dict:
        return dict(data, physics=dict(data["physics"], qpos=self.physics.init_state(qpos=qpos)["qpos"]))

    def mocap_pos(self, data: dict) -> jax.Array:
        return data["mocap_pos"]

    def step(self, data: dict, body_pos: jax.Array, mocap_pos: jax.Array, ctrl: jax.Array) -> tuple[dict, dict, Any]:
        del body_pos  # one model for all envs: the fixture stays where the fixed configuration put it
        inputs = dict(ctrl=ctrl, mocap_pos=mocap_pos.reshape(-1),
                      mocap_quat=jnp.tile(jnp.asarray(MOCAP_QUAT, jnp.float32), mocap_pos.shape[0]))
        physics_state, out = self.physics.step(data["physics"], inputs)
        touch = out.pop("touch")
        return dict(physics=physics_state, mocap_pos=mocap_pos), out, touch
