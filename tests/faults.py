"""A test env that produces NaN, for the fault-handling tests: the numerical fault comes in through the data the
trainer sees (a NaN reward in one member's env at one step, as a blown-up reward would), not through a hook in
production code.

`inject_nan(monkeypatch, cfg, seed, task_index, chunk)` wraps the trainer's env stack (`envs.core.training_env`,
as `programs.build_task_programs` builds it) in `NaNRewardAt` while the patch is active.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.core import State, Wrapper
from purejaxsphere import programs
from purejaxsphere.config import Config
from purejaxsphere.driver import make_train


class NaNRewardAt(Wrapper):
    """The reward is NaN on the one step taken with auto-reset key `key` (`info["reset_key"]`, which
    `envs.core.AutoResetWrapper` advances by one split per step, so it names one env of one member at one step);
    every other reward passes through unchanged, bit for bit. Adds no state: checkpoints keep their structure."""

    def __init__(self, env: Wrapper, key: jax.Array):
        super().__init__(env)
        self.key = key

    def step(self, state: State, action: jax.Array) -> State:
        hit = jnp.all(state.info["reset_key"] == self.key)
        stepped = self.env.step(state, action)
        return stepped.replace(reward=jnp.where(hit, jnp.nan, stepped.reward))


def reset_key_at(cfg: Config, seed: int, task_index: int, chunk: int) -> jax.Array:
    """The auto-reset key env 0 of `seed` carries before its first step of chunk `chunk` of task `task_index`: its
    key at the task's start (from a fresh trainer state, as the run builds it), advanced one split per env step."""
    trainer = make_train(cfg)
    key = trainer.fresh_state(task_index).env_state.info["reset_key"][trainer.seeds.index(seed), 0]
    for _ in range(chunk * trainer.plan.updates_per_chunk * cfg.ppo.n_steps):
        key = jax.random.split(key)[0]
    return key


def inject_nan(monkeypatch, cfg: Config, seed: int, task_index: int, chunk: int) -> None:
    """Runs of `cfg` built while `monkeypatch` is active train in an env whose reward goes NaN for `seed` in the
    first update of chunk `chunk` of task `task_index`."""
    key = reset_key_at(cfg, seed, task_index, chunk)
    training_env = programs.training_env
    monkeypatch.setattr(programs, "training_env", lambda *args: NaNRewardAt(training_env(*args), key))
