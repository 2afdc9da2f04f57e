"""The environment protocol every task implements, and the wrappers the trainer stacks on top.

A task is pure JAX: `reset(key) -> State` and `step(state, action) -> State` are jit- and vmap-able. Conventions
shared by all tasks (the trainer and the evaluator rely on them):

- `state.done` is 1.0 when the step ended the episode by termination *or* truncation; `state.info["truncation"]`
  is 1.0 when it ended only because the episode ran out of steps (PPO bootstraps the value there).
- `state.info["success"]` is a float flag; the *episode's* success is the flag at the step that ends the episode
  (MetaWorld: the env's flag; HumanoidBench: "the return so far reached the bar", which the task tracks itself).
- Every reward term of a task appears in `state.info` under its own name.
- Actions given to `step` lie in [-1, 1]^action_size; a task maps them to its actuators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

if TYPE_CHECKING:
    import mujoco


@struct.dataclass
class State:
    """One environment's state (batch it with vmap). `pipeline_state` is whatever the physics backend carries."""

    pipeline_state: Any
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    info: dict[str, Any] = struct.field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    """What `envs.make` returns: the task, and what tools (bench, eval, render) need to know about its physics.

    `mj_model` is the task's untouched MuJoCo model: what C MuJoCo steps (physics="cpu", `task.cpu()`, bench's
    single-thread baseline) and what render draws. MJX steps a rewrite of it where MJX needs one (the suite's
    `compat_record` lists the changes). `n_substeps` physics steps of `mj_model.opt.timestep` make one env step of
    `dt` seconds. `physics` is the backend `step` runs on ("mjx" or "cpu").
    """

    name: str
    observation_size: int
    action_size: int
    episode_length: int
    has_success: bool
    physics: str
    mj_model: mujoco.MjModel
    n_substeps: int
    dt: float

    def reset(self, key: jax.Array) -> State: ...

    def step(self, state: State, action: jax.Array) -> State: ...


class Wrapper:
    """Forwards everything to the wrapped env; subclasses override `reset` / `step`."""

    def __init__(self, env: Env):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes the wrapper does not define itself.
        return getattr(self.env, name)

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped if isinstance(self.env, Wrapper) else self.env

    def reset(self, key: jax.Array) -> State:
        return self.env.reset(key)

    def step(self, state: State, action: jax.Array) -> State:
        return self.env.step(state, action)


class EpisodeWrapper(Wrapper):
    """Counts steps, truncates at `episode_length`, and accumulates the episode return.

    Adds to `info`: `steps` (steps taken in the current episode), `truncation`, `episode_return` (return so far,
    including this step's reward).
    """

    def reset(self, key: jax.Array) -> State:
        state = self.env.reset(key)
        info = dict(state.info)
        info["steps"] = jnp.zeros((), jnp.float32)
        info["truncation"] = jnp.zeros((), jnp.float32)
        info["episode_return"] = jnp.zeros((), jnp.float32)
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        steps = state.info["steps"] + 1.0
        episode_return = state.info["episode_return"]
        nstate = self.env.step(state, action)
        out_of_time = steps >= self.env.episode_length
        terminated = nstate.done
        info = dict(nstate.info)
        info["steps"] = steps
        info["truncation"] = jnp.where(out_of_time & (terminated < 0.5), 1.0, 0.0)
        info["episode_return"] = episode_return + nstate.reward
        done = jnp.maximum(terminated, out_of_time.astype(jnp.float32))
        return nstate.replace(done=done, info=info)


# Observation magnitude treated as a blow-up: MuJoCo's mjMAXVAL, the bound of its own qpos/qvel/qacc checks.
UNSTABLE_OBS_LIMIT = 1e10


def physics_unstable(state: State) -> jax.Array:
    """True when one env's state has blown up: a NaN or inf anywhere in its physics state or observation, or an
    observation entry beyond UNSTABLE_OBS_LIMIT. Only the observation's magnitude is checked: physics states hold
    large sentinels (MJX marks empty contacts with dist 1e10)."""
    # Some physics states carry Python scalars (Brax's inverted_pendulum after a step): asarray gives them a dtype.
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(state.pipeline_state)]
    leaves = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]).all() if leaves else jnp.bool_(True)
    return ~(finite & jnp.all(jnp.abs(state.obs) < UNSTABLE_OBS_LIMIT))  # NaN and inf fail the comparison


class AutoResetWrapper(Wrapper):
    """Starts a new episode (fresh reset noise from a key carried in `info`) after a step that ends one.

    The finished episode's last observation, return, length and success are kept in `info` as `final_obs`,
    `final_return`, `final_length`, `final_success` (valid where `done` is 1), so the trainer can bootstrap truncated
    episodes and log completed ones.

    A step whose physics blows up (`physics_unstable`) is not propagated, as MetaWorld does with its "physics
    unstable" check: the env is reset, the step's reward is 0, it ends the episode as a termination (no bootstrap,
    success 0), `final_obs` / `final_return` are the last stable observation and return, and
    `info["physics_resets"]` (per env, never reset) counts it.
    """

    def reset(self, key: jax.Array) -> State:
        key, reset_key = jax.random.split(key)
        state = self.env.reset(reset_key)
        info = dict(state.info)
        info["reset_key"] = key
        zero = jnp.zeros((), jnp.float32)
        info["final_obs"] = state.obs
        info["final_return"] = zero
        info["final_length"] = zero
        info["final_success"] = zero
        info["physics_resets"] = jnp.zeros((), jnp.int32)
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array) -> State:
        key = state.info["reset_key"]
        stepped = self.env.step(state, action)
        unstable = physics_unstable(stepped)
        key, reset_key = jax.random.split(key)
        fresh = self.env.reset(reset_key)
        done = (stepped.done > 0.5) | unstable

        def pick(fresh_leaf: jax.Array, stepped_leaf: jax.Array) -> jax.Array:
            return jnp.where(done, fresh_leaf, stepped_leaf)

        pipeline_state = jax.tree.map(pick, fresh.pipeline_state, stepped.pipeline_state)
        obs = pick(fresh.obs, stepped.obs)
        info = dict(stepped.info)
        for name, value in fresh.info.items():
            if name != "truncation":  # describes the transition just taken, like reward and done
                info[name] = pick(value, stepped.info[name])
        info["reset_key"] = key
        info["truncation"] = jnp.where(unstable, 0.0, stepped.info["truncation"])
        info["final_obs"] = jnp.where(unstable, state.obs, stepped.obs)
        info["final_return"] = jnp.where(unstable, state.info["episode_return"], stepped.info["episode_return"])
        info["final_length"] = stepped.info["steps"]
        info["final_success"] = jnp.where(unstable, 0.0, stepped.info["success"])
        info["physics_resets"] = state.info["physics_resets"] + unstable.astype(jnp.int32)
        reward = jnp.where(unstable, 0.0, stepped.reward)
        return stepped.replace(
            pipeline_state=pipeline_state, obs=obs, reward=reward, done=done.astype(stepped.done.dtype), info=info
        )


class PadWrapper(Wrapper):
    """Zero-pads observations to `observation_size` and ignores the extra action dimensions.

    Lets tasks of different sizes share one policy in a continual-RL sequence: the policy sees the padded
    observation and emits `action_size` actions, of which the task uses its first `env.action_size`.
    """

    def __init__(self, env: Env, observation_size: int, action_size: int):
        super().__init__(env)
        if observation_size < env.observation_size or action_size < env.action_size:
            raise ValueError(
                f"cannot pad {env.name} (obs {env.observation_size}, act {env.action_size}) down to "
                f"(obs {observation_size}, act {action_size})"
            )
        self.observation_size = observation_size
        self.action_size = action_size

    def _pad(self, state: State) -> State:
        extra = self.observation_size - self.env.observation_size
        if extra == 0:
            return state
        return state.replace(obs=jnp.pad(state.obs, [(0, extra)]))

    def reset(self, key: jax.Array) -> State:
        return self._pad(self.env.reset(key))

    def step(self, state: State, action: jax.Array) -> State:
        inner = state.replace(obs=state.obs[: self.env.observation_size])
        return self._pad(self.env.step(inner, action[: self.env.action_size]))


def training_env(env: Env, observation_size: int | None = None, action_size: int | None = None) -> Wrapper:
    """The wrapper stack the trainer and evaluator use: padding (optional), episodes, auto-reset."""
    wrapped: Env = env
    if observation_size is not None or action_size is not None:
        wrapped = PadWrapper(env, observation_size or env.observation_size, action_size or env.action_size)
    return AutoResetWrapper(EpisodeWrapper(wrapped))
