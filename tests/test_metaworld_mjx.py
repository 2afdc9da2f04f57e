"""The MJX backend against the real metaworld package (run by mw-oracle; one-step parity), plus the MJX hand reset
and the trainer's wrapper stack. MJX compiles are slow on CPU (~1.5-3 min per task on the 2-core dev machine): the
fast test uses one task; the slow ones cover all ten. Tolerances are the measured maxima (docs/parity_metaworld.md)
with margin."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs.metaworld as mw
from envs.core import training_env
from envs.metaworld.base import INFO_KEYS
from envs.metaworld.parity import _Compiled, run_parity

FAST_TASK = "push-back-v3"


@pytest.fixture(scope="module")
def fast_setup():
    ref = mw.reference(FAST_TASK, seed=1)
    ref.reset()
    task = mw.make(FAST_TASK, rand_vec=np.array(ref.rand_vec))
    return task, _Compiled(task)


def test_mjx_one_step_parity_fast(fast_setup):
    task, compiled = fast_setup
    result = run_parity(FAST_TASK, "mjx", steps=40, seed=1, resync=True, task=task, compiled=compiled)
    # Measured (seed 1, 60 steps): 8e-6 per step before the expert grasps the block; reset 4e-8.
    assert result.reset_obs_err < 1e-5
    assert result.obs_err < 1e-3
    assert result.reward_err < 1e-2
    assert result.success_mismatch == 0


def test_mjx_step_outputs(fast_setup):
    task, compiled = fast_setup
    state = compiled.reset_to(task.fixed_rand_vec)
    assert state.obs.shape == (39,) and set(INFO_KEYS) <= set(state.info)
    for _ in range(3):
        state = compiled.step(state, jnp.array([0.5, -0.5, 0.2, 1.0]))
    assert float(state.done) == 0.0
    assert np.all(np.isfinite(np.asarray(state.obs))) and np.isfinite(float(state.reward))
    assert set(INFO_KEYS) <= set(state.info)
    # The hand moved towards +x, -y (mocap moves 1 cm per unit action and step).
    ps = state.pipeline_state
    np.testing.assert_allclose(np.asarray(ps.data.mocap_pos[0]),
                               task.hand_reset_state["mocap_pos"][0] + np.array([0.015, -0.015, 0.006]), atol=1e-6)


# Measured one-step maxima over 100 expert steps (seed 1) are in docs/parity_metaworld.md; the slow test asserts
# the success flags agree on nearly every step and the hand/gripper error stays within a few mm.
@pytest.mark.slow
@pytest.mark.parametrize("name", mw.CW10_NAMES)
def test_mjx_one_step_parity_all_tasks(name):
    result = run_parity(name, "mjx", steps=100, seed=1, resync=True)
    assert result.reset_obs_err < 1e-4
    assert result.obs_err_hand < 5e-2
    assert result.obs_err_median < 1e-2
    assert result.success_mismatch <= 3


@pytest.mark.slow
def test_mjx_hammer_expert_drives_the_nail():
    """The package's hammer expert succeeds in MJX as in the package (seed 0: the nail passes 0.09 by step ~65).

    With the nail head and hammer faces turned by 90 degrees (a past model-rewrite bug), the hammer met the nail
    4 cm early and stalled it at 0.084: the expert never succeeded in MJX."""
    name = "hammer-v3"
    ref = mw.reference(name, seed=0)
    obs, _ = ref.reset()
    task = mw.make(name, rand_vec=np.array(ref.rand_vec))
    compiled = _Compiled(task)
    state = compiled.reset_to(task.fixed_rand_vec)
    policy = mw.expert_policy(name)
    flags = []
    for _ in range(120):
        state = compiled.step(state, np.asarray(policy.get_action(np.asarray(state.obs)), np.float32))
        flags.append(bool(state.info["success"]))
    nail = float(state.pipeline_state.data.qpos[task.nail_qposadr])
    assert any(flags), f"the nail reached {nail:.3f} (success needs > 0.09)"


@pytest.mark.slow
def test_mjx_hand_reset_matches_c_mujoco():
    task = mw.make("push-v3")
    data = jax.jit(task.simulate_hand_reset)()
    np.testing.assert_allclose(np.asarray(data.qpos[:9]), task.hand_reset_state["qpos"][:9], atol=2e-3)
    np.testing.assert_allclose(np.asarray(data.mocap_pos), task.hand_reset_state["mocap_pos"], atol=1e-6)


@pytest.mark.slow
def test_training_env_wrapper_stack():
    env = training_env(mw.make("handle-press-side-v3", episode_length=3))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state = jax.jit(jax.vmap(env.reset))(keys)
    step = jax.jit(jax.vmap(env.step))
    for _ in range(4):
        state = step(state, jnp.zeros((2, 4)))
    assert np.asarray(state.info["steps"]).tolist() == [1.0, 1.0]  # auto-reset after 3 steps
    assert np.all(np.isfinite(np.asarray(state.info["final_return"])))
