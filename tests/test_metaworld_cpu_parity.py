"""The port's observation, reward, reward terms and success against the real metaworld package, on the CPU backend.

The CPU backend simulates the package's untouched model with C MuJoCo and computes observation and reward with the
port's JAX functions, so these tests check the JAX task logic (reset placement, observation layout and clipping,
every reward term, the success rule) for all ten tasks at float32 precision. Figures: docs/parity_metaworld.md.
Tolerances (measured max over 100 expert steps, all ten tasks, seed 1): obs 6e-7, reward 6e-5 (push: 2.5e-5,
peg-unplug-side: 6.1e-5, from float32 arithmetic on terms of size ~1 amplified by hamacher products), reset obs
3e-8. The thresholds below leave a margin of ~10x over those.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import numpy as np
import pytest

import envs.metaworld as mw
from envs.metaworld.parity import run_parity

OBS_TOL = 1e-5
REWARD_TOL = 1e-3
TERM_TOL = 1e-3
RESET_TOL = 1e-6


@pytest.mark.parametrize("name", mw.CW10_NAMES)
def test_cpu_backend_matches_package_step_by_step(name):
    result = run_parity(name, backend="cpu", steps=100, seed=1, resync=True)
    assert result.reset_obs_err < RESET_TOL
    assert result.obs_err < OBS_TOL
    assert result.reward_err < REWARD_TOL
    for term, err in result.term_err.items():
        assert err < TERM_TOL, (term, err)
    assert result.success_mismatch == 0


@pytest.mark.parametrize("name", ["push-v3", "faucet-close-v3", "window-close-v3"])
def test_cpu_backend_open_loop_tracks_package(name):
    # Without re-syncing, the two C MuJoCo runs stay identical up to float32 rounding of the action offset
    # (these tasks have no chaotic grasp in the first 100 steps; stick-pull diverges at ~1e-3 after its grasp).
    result = run_parity(name, backend="cpu", steps=100, seed=2, resync=False)
    assert result.obs_err < OBS_TOL
    assert result.reward_err < REWARD_TOL
    assert result.success_mismatch == 0


def test_gymnasium_interface():
    env = mw.make("push-v3").cpu()
    obs, info = env.reset(seed=3)
    assert obs.shape == (39,) and env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    total = 0.0
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        assert not terminated and not truncated
        assert set(info) >= {"success", "near_object", "grasp_success", "grasp_reward", "in_place_reward",
                             "obj_to_target", "unscaled_reward"}
    assert np.isfinite(total)
    # Fixed configuration (the default): every reset shows the same goal and object.
    first = env.reset(seed=4)[0]
    second = env.reset(seed=5)[0]
    np.testing.assert_array_equal(first, second)
