"""A tiny task for tests and profiling: a point mass driven towards the origin, optionally blowing up on purpose.

`PointMass` implements the whole Env protocol (envs.core) in a few jnp operations, so the trainer, the wrappers and
the tools can run on it without building a physics model: tests of the trainer's plumbing (init, inheritance,
blow-up handling) and the profiler's "no physics" baseline (scripts/profile_collection.py) use it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco

from envs.core import State

BLOWUPS = ("nan", "huge", "hidden_inf")
DAMPING, GAIN, TIMESTEP = 0.9, 0.1, 0.1


def point_mass_model(dims: int) -> mujoco.MjModel:
    """The same point mass in C MuJoCo (one slide joint and one motor per dimension), for tools that draw or time
    the task's `mj_model`; the JAX dynamics below are their own closed form, not MuJoCo's."""
    axes = ["1 0 0", "0 1 0", "0 0 1"]
    joints = "".join(f'<joint name="x{i}" type="slide" axis="{axes[i % 3]}"/>' for i in range(dims))
    motors = "".join(f'<motor joint="x{i}" ctrlrange="-1 1" ctrllimited="true"/>' for i in range(dims))
    xml = (f'<mujoco><option timestep="{TIMESTEP}"/><worldbody><body>{joints}<geom size="0.05"/></body>'
           f"</worldbody><actuator>{motors}</actuator></mujoco>")
    return mujoco.MjModel.from_xml_string(xml)


class PointMass:
    """A point mass in `action_size` dimensions: v <- 0.9 v + 0.1 a, x <- x + 0.1 v, reward -|x|, success |x| < 0.1.

    obs = (x, steps / episode_length), zero-padded to `observation_size` (default action_size + 1); never
    terminates (the wrappers truncate). With `p_fuse` > 0 an env draws a fuse at reset with that probability and a
    fused env blows up at step `explode_at` of its episode: `blowup="nan"` makes its velocity NaN (physics,
    observation and reward go NaN), "huge" makes it 1e12 (the observation passes envs.core.UNSTABLE_OBS_LIMIT,
    everything stays finite), "hidden_inf" puts inf into a physics leaf that neither observation nor reward reads.
    """

    name = "test/point_mass"
    has_success = True
    physics = "mjx"  # pure JAX, like MJX: no host callback
    n_substeps = 1
    dt = TIMESTEP

    def __init__(self, episode_length: int = 20, *, action_size: int = 2, observation_size: int | None = None,
                 blowup: str = "nan", p_fuse: float = 0.0, explode_at: int = 3):
        if blowup not in BLOWUPS:
            raise ValueError(f"blowup must be one of {BLOWUPS}, got {blowup!r}")
        self.episode_length, self.action_size = int(episode_length), int(action_size)
        self.observation_size = int(observation_size or action_size + 1)
        if self.observation_size < self.action_size + 1:
            raise ValueError(f"observation_size must be at least action_size + 1 = {self.action_size + 1}")
        self.blowup, self.p_fuse, self.explode_at = blowup, float(p_fuse), int(explode_at)
        self.mj_model = point_mass_model(self.action_size)

    def _state(self, physics: dict[str, jax.Array], reward: jax.Array) -> State:
        distance = jnp.linalg.norm(physics["x"])
        obs = jnp.concatenate([physics["x"], physics["t"][None] / self.episode_length])
        obs = jnp.pad(obs, (0, self.observation_size - obs.shape[0]))
        success = (distance < 0.1).astype(jnp.float32)
        return State(physics, obs, reward, jnp.zeros(()), {"success": success, "distance": distance})

    def reset(self, key: jax.Array) -> State:
        x_key, fuse_key = jax.random.split(key)
        physics = {
            "x": jax.random.uniform(x_key, (self.action_size,), minval=-1.0, maxval=1.0),
            "v": jnp.zeros(self.action_size),
            "t": jnp.zeros(()),
            "energy": jnp.zeros(()),
            "fuse": jax.random.bernoulli(fuse_key, self.p_fuse).astype(jnp.float32),
        }
        return self._state(physics, jnp.zeros(()))

    def step(self, state: State, action: jax.Array) -> State:
        physics = state.pipeline_state
        t = physics["t"] + 1.0
        boom = (physics["fuse"] > 0) & (t == self.explode_at)
        v = DAMPING * physics["v"] + GAIN * action
        energy = physics["energy"] + jnp.sum(v**2)
        if self.blowup == "nan":
            v = jnp.where(boom, jnp.nan, v)
        elif self.blowup == "huge":
            v = jnp.where(boom, 1e12, v)
        else:
            energy = jnp.where(boom, jnp.inf, energy)
        x = physics["x"] + TIMESTEP * v
        physics = {**physics, "x": x, "v": v, "t": t, "energy": energy}
        return self._state(physics, -jnp.linalg.norm(x))
