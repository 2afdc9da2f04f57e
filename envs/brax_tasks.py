"""Brax's MJX environments behind the `envs.make` API, as `brax/<name>`.

A first real MJX task suite (contact-free `reacher` and `inverted_double_pendulum` are fast even on CPU). Brax tasks
have no success criterion: `has_success` is False and `info["success"]` stays 0. Importing this module imports
neither jax nor Brax (the registry reads `BRAX_TASKS` at config time); building a task does.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jax

    from envs.core import Env, State

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
    physics = "mjx"

    def __init__(self, name: str, episode_length: int = 1000, physics: str = "mjx"):
        if physics != "mjx":
            raise ValueError(f"Brax tasks run on MJX only (physics={physics!r} asked)")
        if name not in BRAX_TASKS:
            raise ValueError(f"unknown Brax task {name!r}; known: {', '.join(BRAX_TASKS)}")
        import jax

        with warnings.catch_warnings():  # Brax warns that its own pipelines are unmaintained; we use MJX only
            warnings.simplefilter("ignore", UserWarning)
            from brax import envs as brax_envs  # imported lazily: building Brax envs is slow

            env = brax_envs.get_environment(name, backend="mjx")
        self.name = f"brax/{name}"
        self.brax_env = env  # Brax's own env: what Brax's PPO trains on in the bench (`brax_env_for`)
        # Brax's `observation_size` runs an eager reset: hundreds of op-by-op compiles (seconds idle, minutes on a
        # loaded machine). Tracing the reset abstractly gives the same size without compiling anything.
        self.observation_size = int(jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs.shape[-1])
        self.action_size = int(env.action_size)
        self.episode_length = int(episode_length)
        self.dt = float(env.dt)
        self.mj_model = env.sys.mj_model
        self.n_substeps = round(self.dt / float(env.sys.opt.timestep))  # Brax's frame skip: its dt / sys timestep

    def _to_state(self, brax_state: Any) -> Any:
        import jax.numpy as jnp

        from envs.core import State

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
        return self._to_state(self.brax_env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        return self._to_state(self.brax_env.step(state.pipeline_state, action))


def brax_env_for(task: Env) -> Any:
    """The Brax env Brax's PPO trains on: a Brax task's own env, or any task behind Brax's Env interface."""
    if isinstance(task, BraxTask):
        return task.brax_env
    return brax_adapter(task)


def brax_adapter(task: Env) -> Any:
    """Our Env protocol behind `brax.envs.base.Env` (pipeline_state = our State; actions clipped to [-1, 1])."""
    import jax.numpy as jnp
    from brax.envs.base import Env as BraxEnv
    from brax.envs.base import State as BraxState

    class Adapter(BraxEnv):
        observation_size = task.observation_size
        action_size = task.action_size
        backend = task.physics

        def reset(self, rng: jax.Array) -> BraxState:
            state = task.reset(rng)
            return BraxState(pipeline_state=state, obs=state.obs, reward=state.reward, done=state.done)

        def step(self, state: BraxState, action: jax.Array) -> BraxState:
            nstate = task.step(state.pipeline_state, jnp.clip(action, -1.0, 1.0))
            return state.replace(pipeline_state=nstate, obs=nstate.obs, reward=nstate.reward, done=nstate.done)

    return Adapter()
