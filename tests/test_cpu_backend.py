"""envs.cpu.CpuPhysics: C MuJoCo behind jax.pure_callback, checked against plain mj_step on a small model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from envs.cpu import CpuPhysics, join64, split64

XML = """
<mujoco>
  <option timestep="0.005"/>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="box" pos="0 0 0.5">
      <freejoint/>
      <geom type="box" size="0.1 0.1 0.1" mass="1"/>
      <site name="tip" pos="0.1 0 0"/>
      <body name="arm" pos="0 0 0.2">
        <joint name="hinge" type="hinge" axis="0 1 0" damping="0.1"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" gear="1" ctrlrange="-1 1"/></actuator>
  <sensor><framelinvel name="vel" objtype="body" objname="box"/></sensor>
</mujoco>
"""


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(XML)


def extract(m, d):
    return {"tip": d.site_xpos[0], "vel": d.sensordata[:3], "ncon": float(d.ncon)}


OUTPUTS = {"tip": (3,), "vel": (3,), "ncon": ()}


def reference(model, qpos, qvel, ctrls, nsub):
    """Plain MuJoCo: the trajectory of one environment (states and outputs after each step)."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    d.qvel[:] = qvel
    out = []
    for ctrl in ctrls:
        d.ctrl[:] = ctrl
        mujoco.mj_step(model, d, nsub)
        out.append((d.qpos.copy(), d.qvel.copy(), {k: np.copy(v) for k, v in extract(model, d).items()}))
    return out


def initial(model, n, seed=0):
    rng = np.random.default_rng(seed)
    qpos = np.tile(model.qpos0, (n, 1)) + rng.uniform(-0.05, 0.05, (n, model.nq))
    qvel = rng.uniform(-0.5, 0.5, (n, model.nv))
    ctrls = rng.uniform(-1, 1, (6, n, model.nu))
    return qpos, qvel, ctrls


def test_split64_roundtrip():
    x = np.random.default_rng(0).normal(size=(4, 7)) * 100
    assert np.abs(join64(split64(x)) - x).max() <= 1e-12 * np.abs(x).max()
    assert split64(x).dtype == np.float32 and split64(x).shape == (4, 2, 7)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_vmapped_scan_matches_plain_mujoco(model, num_threads):
    n = 5
    qpos, qvel, ctrls = initial(model, n)
    physics = CpuPhysics(model, n_substeps=4, outputs=OUTPUTS, extract=extract, num_threads=num_threads)
    state = jax.vmap(lambda q, v: physics.init_state(qpos=q, qvel=v))(jnp.asarray(qpos), jnp.asarray(qvel))
    # init_state from float32 loses the float64 tail: start the reference from exactly what the state holds.
    start_q = join64(np.asarray(state["qpos"]))
    start_v = join64(np.asarray(state["qvel"]))

    @jax.jit
    def rollout(state, ctrls):
        def body(s, c):
            s, out = jax.vmap(lambda si, ci: physics.step(si, {"ctrl": ci}))(s, c)
            return s, (s, out)

        return jax.lax.scan(body, state, ctrls)

    _, (states, outs) = rollout(state, jnp.asarray(ctrls, jnp.float32))
    for i in range(n):
        ref = reference(model, start_q[i], start_v[i], np.asarray(ctrls[:, i], np.float32), 4)
        for t, (q, v, o) in enumerate(ref):
            # the state is carried in float64 (hi/lo pairs): identical to an uninterrupted C run
            assert np.abs(join64(np.asarray(states["qpos"][t, i])) - q).max() < 1e-12
            assert np.abs(join64(np.asarray(states["qvel"][t, i])) - v).max() < 1e-10
            np.testing.assert_allclose(np.asarray(outs["tip"][t, i]), o["tip"], rtol=0, atol=1e-6)
            np.testing.assert_allclose(np.asarray(outs["vel"][t, i]), o["vel"], rtol=0, atol=1e-5)
            assert float(outs["ncon"][t, i]) == o["ncon"]


def test_unbatched_and_two_batch_axes(model):
    qpos, qvel, ctrls = initial(model, 6, seed=1)
    physics = CpuPhysics(model, n_substeps=2, outputs=OUTPUTS, extract=extract, num_threads=2)
    state = physics.init_state(qpos=jnp.asarray(qpos[0]), qvel=jnp.asarray(qvel[0]))
    s1, o1 = jax.jit(physics.step)(state, {"ctrl": jnp.asarray(ctrls[0, 0], jnp.float32)})
    assert s1["qpos"].shape == (2, model.nq) and o1["tip"].shape == (3,)
    init = jax.vmap(lambda q, v: physics.init_state(qpos=q, qvel=v))
    states = jax.vmap(init)(jnp.asarray(qpos.reshape(2, 3, -1)), jnp.asarray(qvel.reshape(2, 3, -1)))
    c = jnp.asarray(ctrls[0].reshape(2, 3, -1), jnp.float32)
    s2, o2 = jax.jit(jax.vmap(jax.vmap(lambda s, ci: physics.step(s, {"ctrl": ci}))))(states, c)
    assert o2["tip"].shape == (2, 3, 3) and s2["qvel"].shape == (2, 3, 2, model.nv)
    np.testing.assert_array_equal(np.asarray(o2["tip"][0, 0]), np.asarray(o1["tip"]))
    # the same step with the state broadcast against batched controls (vmap over ctrl only)
    s3, o3 = jax.vmap(lambda ci: physics.step(state, {"ctrl": ci}))(jnp.asarray(ctrls[0], jnp.float32))
    assert o3["tip"].shape == (6, 3)
    np.testing.assert_array_equal(np.asarray(o3["tip"][0]), np.asarray(o1["tip"]))


def test_forward_does_not_advance(model):
    physics = CpuPhysics(model, n_substeps=3, outputs=OUTPUTS, extract=extract)
    state = physics.init_state(qpos=model.qpos0, qvel=np.zeros(model.nv))
    out = physics.forward(state)
    d = mujoco.MjData(model)
    d.qpos[:] = model.qpos0
    mujoco.mj_forward(model, d)
    np.testing.assert_allclose(np.asarray(out["tip"]), d.site_xpos[0], atol=1e-6)
    with pytest.raises(ValueError):
        physics.init_state(qacc=np.zeros(model.nv))
