"""C MuJoCo as a JAX physics backend: batched `mj_step` on a thread pool behind `jax.pure_callback`.

A task is a MuJoCo model plus JAX functions of a small pytree of physics quantities (site positions, body frames,
actuator forces, sensors, contact flags). `CpuPhysics` produces that pytree from C MuJoCo, so a compiled JAX program
(the trainer) can step the *untouched* model at C speed without a GPU. The API is small:

    physics = CpuPhysics(model, n_substeps=10, outputs={"qpos": (nq,), "head": (3,)},
                         extract=lambda m, d: {"qpos": d.qpos, "head": d.site_xpos[head_id]})
    state = physics.init_state(qpos=q0, qvel=v0)            # dict of jnp arrays (see "State" below)
    state, out = physics.step(state, {"ctrl": ctrl})         # jit-, vmap- and scan-able
    out = physics.forward(state)                             # mj_forward only (no time step)
    physics.value(state, "qpos")                             # the float32 value of a state field

- `step` writes the state fields and the inputs (MjData attribute names, default `ctrl`) into an MjData, calls
  `mj_step` `n_substeps` times, reads the state fields back and calls `extract(model, data)`, which must return a
  dict of arrays matching `outputs` (name -> shape; float32, or a `jax.ShapeDtypeStruct`). As in `mj_step`,
  quantities that `mj_forward` computes (xpos, site_xpos, sensordata, actuator_force, contacts) are those of the
  last substep's forward pass, i.e. of the state *before* the last integration: the same convention as MJX's
  `mjx.step` and as HumanoidBench and MetaWorld, which read them after `mj_step`.
- State: MjData attributes carried between steps (default qpos, qvel, qacc_warmstart: MuJoCo warm-starts its
  solver from the last accelerations, so carrying them keeps a replay identical to an uninterrupted C run).
  They are float64 in MuJoCo; the state stores each as a (2, size) float32 array of high and low parts whose sum
  is the float64 value to ~1e-14 relative, so a float32 JAX program does not round the physics every step.
- Batching: under `vmap` the callback receives the whole batch (`vmap_method="broadcast_all"`); any leading batch
  shape is flattened, split into `num_threads` contiguous chunks and stepped on a thread pool, each chunk with its
  own MjData (`mj_step` releases the GIL, so threads scale with cores).
- The model is used as given: no MJX restrictions apply here (all collision pairs, meshes, solver settings).
- Blow-ups: MuJoCo's own checks (mj_checkPos/Vel/Acc: NaN or |value| > 1e10) silently reset an MjData to qpos0
  mid-step. A step during which that happened returns a NaN state instead, so the JAX side sees the blow-up as MJX
  shows it and `envs.core.AutoResetWrapper` resets and counts it (docs/reliability.md).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

Extract = Callable[[mujoco.MjModel, mujoco.MjData], Mapping[str, Any]]
BLOWUP_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)


def blowup_count(d: mujoco.MjData) -> int:
    """How many times MuJoCo's blow-up checks have reset this MjData (they count in `d.warning`)."""
    return sum(int(d.warning[w].number) for w in BLOWUP_WARNINGS)


def split64(x: np.ndarray) -> np.ndarray:
    """float64 array (..., n) -> float32 (..., 2, n) of high and low parts (hi + lo == x to ~1e-14 relative)."""
    x = np.asarray(x, np.float64)
    hi = x.astype(np.float32)
    lo = (x - hi.astype(np.float64)).astype(np.float32)
    return np.stack([hi, lo], axis=-2)


def join64(x: np.ndarray) -> np.ndarray:
    """Inverse of `split64`: float32 (..., 2, n) -> float64 (..., n)."""
    x = np.asarray(x)
    return x[..., 0, :].astype(np.float64) + x[..., 1, :].astype(np.float64)


class CpuPhysics:
    """Steps one MuJoCo model on the CPU for a batch of JAX states (see the module docstring)."""

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        n_substeps: int,
        outputs: Mapping[str, Sequence[int] | jax.ShapeDtypeStruct],
        extract: Extract,
        state_fields: Sequence[str] = ("qpos", "qvel", "qacc_warmstart"),
        input_fields: Sequence[str] = ("ctrl",),
        num_threads: int | None = None,
    ):
        self.model = model
        self.n_substeps = int(n_substeps)
        self.extract = extract
        self.state_fields = tuple(state_fields)
        self.input_fields = tuple(input_fields)
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.outputs = {
            name: spec if isinstance(spec, jax.ShapeDtypeStruct) else jax.ShapeDtypeStruct(tuple(spec), jnp.float32)
            for name, spec in outputs.items()
        }
        probe = mujoco.MjData(model)
        self._state_sizes = {name: int(np.asarray(getattr(probe, name)).size) for name in self.state_fields}
        self._input_sizes = {name: int(np.asarray(getattr(probe, name)).size) for name in self.input_fields}
        self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="cpu-physics")
        self._datas: queue.SimpleQueue[mujoco.MjData] = queue.SimpleQueue()
        for _ in range(self.num_threads):
            self._datas.put(mujoco.MjData(model))

    # ------------------------------------------------------------------ state helpers (host or traced)
    def init_state(self, **fields: Any) -> dict[str, jax.Array]:
        """A state from float values of the state fields (jnp or np; missing fields are zero). Traceable."""
        unknown = set(fields) - set(self.state_fields)
        if unknown:
            raise ValueError(f"not state fields: {sorted(unknown)}; state fields are {self.state_fields}")
        state = {}
        for name in self.state_fields:
            value = fields.get(name)
            size = self._state_sizes[name]
            if value is None:
                state[name] = jnp.zeros((2, size), jnp.float32)
            elif isinstance(value, np.ndarray) and value.dtype == np.float64:
                state[name] = jnp.asarray(split64(value.reshape(value.shape[:-1] + (size,))))
            else:
                hi = jnp.asarray(value, jnp.float32)
                state[name] = jnp.stack([hi, jnp.zeros_like(hi)], axis=-2)
        return state

    @staticmethod
    def value(state: Mapping[str, jax.Array], name: str) -> jax.Array:
        """The float32 value of a state field."""
        return state[name][..., 0, :]

    # ------------------------------------------------------------------ JAX entry points
    def step(self, state: Mapping[str, jax.Array], inputs: Mapping[str, jax.Array]):
        """`n_substeps` of mj_step from `state` under `inputs`; returns (next state, outputs)."""
        return self._call(state, inputs, n_substeps=self.n_substeps)

    def forward(self, state: Mapping[str, jax.Array], inputs: Mapping[str, jax.Array] | None = None):
        """mj_forward at `state` (inputs default to zero); returns the outputs (same names and shapes as `step`)."""
        if inputs is None:
            batch = jnp.shape(state[self.state_fields[0]])[:-2]
            inputs = {name: jnp.zeros(batch + (size,), jnp.float32) for name, size in self._input_sizes.items()}
        _, out = self._call(state, inputs, n_substeps=0)
        return out

    def _call(self, state, inputs, n_substeps):
        state = {name: jnp.asarray(state[name], jnp.float32) for name in self.state_fields}
        inputs = {name: jnp.asarray(inputs[name], jnp.float32) for name in self.input_fields}
        result_shapes = (
            {name: jax.ShapeDtypeStruct((2, self._state_sizes[name]), jnp.float32) for name in self.state_fields},
            dict(self.outputs),
        )

        def callback(state_np, inputs_np):
            return self._host_step(state_np, inputs_np, n_substeps)

        new_state, out = jax.pure_callback(callback, result_shapes, state, inputs, vmap_method="broadcast_all")
        if n_substeps == 0:
            new_state = state
        return new_state, out

    # ------------------------------------------------------------------ host side
    def _host_step(self, state_np, inputs_np, n_substeps):
        first = self.state_fields[0]
        batch_shape = np.shape(state_np[first])[:-2]
        n = int(np.prod(batch_shape, dtype=np.int64))
        state64 = {
            name: join64(np.reshape(state_np[name], (n, 2, self._state_sizes[name]))) for name in self.state_fields
        }
        ins = {
            name: np.reshape(np.asarray(inputs_np[name], np.float64), (n, self._input_sizes[name]))
            for name in inputs_np
        }
        new_state = {name: np.empty_like(value) for name, value in state64.items()}
        out = {name: np.empty((n,) + spec.shape, spec.dtype) for name, spec in self.outputs.items()}

        def run(lo: int, hi: int) -> None:
            d = self._datas.get()
            try:
                for i in range(lo, hi):
                    for name in self.state_fields:
                        getattr(d, name)[:] = state64[name][i]
                    for name, value in ins.items():
                        getattr(d, name)[:] = value[i]
                    blowups = blowup_count(d)
                    if n_substeps:
                        mujoco.mj_step(self.model, d, n_substeps)
                    else:
                        mujoco.mj_forward(self.model, d)
                    blew_up = blowup_count(d) > blowups
                    for name in self.state_fields:
                        new_state[name][i] = np.nan if blew_up else getattr(d, name)
                    for name, value in self.extract(self.model, d).items():
                        out[name][i] = value
            finally:
                self._datas.put(d)

        chunks = np.linspace(0, n, min(self.num_threads, max(n, 1)) + 1).astype(int)
        if len(chunks) <= 2:
            run(0, n)
        else:
            list(self._pool.map(run, chunks[:-1], chunks[1:]))
        state_out = {
            name: split64(value).reshape(batch_shape + (2, self._state_sizes[name]))
            for name, value in new_state.items()
        }
        out = {name: value.reshape(batch_shape + self.outputs[name].shape) for name, value in out.items()}
        return state_out, out
