"""Brax's MJX environments behind the `envs.make` API, as `brax/<name>`.

A first real MJX task suite (contact-free `reacher` and `inverted_double_pendulum` are fast even on CPU). Brax tasks
have no success criterion: `has_success` is False and `info["success"]` stays 0.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp

from envs.core import State

# Brax environments known to build with the MJX backend in brax 0.14.2.
BRAX_TASKS = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "walker2d",
)


class BraxTask:
    """Adapts a `brax.envs.Env` (mjx backend) to the project's Env protocol."""

    has_success = False

    def __init__(self, name: str, episode_length: int = 1000, physics: str = "mjx"):
        if physics != "mjx":
            raise ValueError(f"Brax tasks run on MJX only (physics={physics!r} asked)")
        if name not in BRAX_TASKS:
            raise ValueError(f"unknown Brax task {name!r}; known: {', '.join(BRAX_TASKS)}")
        with warnings.catch_warnings():  # Brax warns that its own pipelines are unmaintained; we use MJX only
            warnings.simplefilter("ignore", UserWarning)
            from brax import envs as brax_envs  # imported lazily: building Brax envs is slow

            env = brax_envs.get_environment(name, backend="mjx")
        self.name = f"brax/{name}"
        self._env = env
        # Brax's `observation_size` runs an eager reset: hundreds of op-by-op compiles (~3 s idle, 80 s on a loaded
        # 2-core machine). Tracing the reset abstractly gives the same size without compiling anything.
        self.observation_size = int(jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs.shape[-1])
        self.action_size = int(self._env.action_size)
        self.episode_length = int(episode_length)
        self.dt = float(self._env.dt)

    def _to_state(self, brax_state) -> State:
        info = {name: jnp.asarray(value, jnp.float32) for name, value in brax_state.metrics.items()}
        info["success"] = jnp.zeros((), jnp.float32)
        return State(
            pipeline_state=brax_state,
            obs=brax_state.obs,
            reward=jnp.asarray(brax_state.reward, jnp.float32),
            done=jnp.asarray(brax_state.done, jnp.float32),
            info=info,
        )

    def reset(self, key: jax.Array) -> State:
        return self._to_state(self._env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        return self._to_state(self._env.step(state.pipeline_state, action))
