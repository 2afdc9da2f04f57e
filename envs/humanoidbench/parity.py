"""Measure how far the MJX backend is from the CPU backend (the untouched model) from identical states.

Three physics runs from the same states under the same actions, each with the same JAX task code:
  cpu     C MuJoCo, HumanoidBench's untouched model (the reference; the CPU backend)
  compat  C MuJoCo, the model after the MJX compat rewrite (isolates the effect of the rewrite)
  mjx     MJX on the rewritten model (adds MJX's own collision/solver differences and float32)
Scenarios (all in one vmapped batch): reset states on the floor or lifted 2 m (no contacts); "hold" actions (the
keyframe joint targets) or uniform random actions; for h1_slide and h1_pole also "terrain/hold" (on a ramp, against
a pole).

    python -m envs.humanoidbench.parity [TASK ...] [--steps 5] [--iterations 100 --ls-iterations 50]
prints one table per task (max abs differences per control step). docs/parity_humanoidbench.md records results.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.humanoidbench import TASK_NAMES, get_spec, h1

SCENARIOS = ("floor/hold", "floor/random", "lifted/hold", "lifted/random")
# Task-specific starts that touch the terrain: on the first ramp's slope (height 1.75 * (x - 0.3) / 5) for h1_slide,
# against the pole at (1, 0.75) for h1_pole.
TERRAIN = {"h1_slide": {0: 2.8, 2: 1.75 * 2.5 / 5}, "h1_pole": {0: 1.0, 1: 0.6}}


def scenarios(task_name: str) -> tuple[str, ...]:
    return SCENARIOS + (("terrain/hold",) if task_name in TERRAIN else ())


def hold_action(task: h1.H1Task) -> jnp.ndarray:
    """The action whose control targets are the keyframe joint angles."""
    q = task.key_qpos[7:]
    return 2.0 * (q - task.ctrl_low) / (task.ctrl_high - task.ctrl_low) - 1.0


def compat_cpu_task(mjx_task: h1.H1Task) -> h1.H1Task:
    """The task on C MuJoCo with the MJX-rewritten model (same layout, same JAX code)."""
    from envs.cpu import CpuPhysics

    task = h1.H1Task(mjx_task.spec, physics="cpu")
    model = mjx_task.backend.mj_model
    layout = h1.Layout(model)
    task.backend.mj_model = model
    task.backend.layout = layout
    task.backend.physics = CpuPhysics(
        model, n_substeps=h1.FRAME_SKIP, outputs=h1.QUANTITIES, extract=functools.partial(h1.cpu_extract, layout)
    )
    return task


def scenario_batch(task: h1.H1Task, n_per: int, steps: int, seed: int = 0):
    """(qpos [B,26], qvel [B,25], actions [T,B,19], labels [B]) for every scenario, n_per states each."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n_per)
    base = np.asarray(jax.vmap(task.reset)(keys).obs, np.float64)
    qs, vs, acts, labels = [], [], [], []
    rng = np.random.default_rng(seed)
    hold = np.asarray(hold_action(task))
    for scen in scenarios(task.spec.name):
        q = base[:, :26].copy()
        if scen.startswith("lifted"):
            q[:, 2] += 2.0
        if scen.startswith("terrain"):
            for i, offset in TERRAIN[task.spec.name].items():
                q[:, i] += offset
        qs.append(q)
        vs.append(base[:, 26:])
        if scen.endswith("hold"):
            acts.append(np.broadcast_to(hold, (steps, n_per, 19)))
        else:
            acts.append(rng.uniform(-1, 1, (steps, n_per, 19)))
        labels += [scen] * n_per
    return (np.concatenate(qs), np.concatenate(vs), np.concatenate(acts, axis=1).astype(np.float32),
            np.asarray(labels))


def rollout(task: h1.H1Task, qpos, qvel, actions):
    """obs, reward and terms after each step: dict of [T, B, ...] arrays."""
    states = jax.vmap(task.state_from)(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))

    @jax.jit
    def run(states, actions):
        def body(s, a):
            s = jax.vmap(task.step)(s, a)
            out = {"qpos": s.obs[:, :26], "qvel": s.obs[:, 26:], "reward": s.reward}
            out.update({k: s.info[k] for k in task.term_names})
            return s, out

        return jax.lax.scan(body, states, actions)[1]

    return {k: np.asarray(v) for k, v in run(states, jnp.asarray(actions)).items()}


def max_diff(a: dict, b: dict, labels, scen: str) -> dict:
    """Per step: max abs difference of qpos, qvel, reward and of any reward term, over the scenario's envs."""
    sel = labels == scen
    terms = [k for k in a if k not in ("qpos", "qvel", "reward")]
    out = {}
    for k in ("qpos", "qvel", "reward"):
        out[k] = np.abs(a[k][:, sel] - b[k][:, sel]).reshape(a[k].shape[0], -1).max(axis=1)
    out["terms"] = np.max([np.abs(a[k][:, sel] - b[k][:, sel]).max(axis=1) for k in terms], axis=0)
    return out


def measure(task_name: str, steps: int = 5, n_per: int = 4, **mjx_kwargs) -> dict:
    """{(pair, scenario): {quantity: per-step max abs diff}} for pairs cpu~compat, compat~mjx, cpu~mjx."""
    spec = get_spec(task_name)
    mjx_task = h1.H1Task(spec, physics="mjx", **mjx_kwargs)
    cpu_task = h1.H1Task(spec, physics="cpu")
    compat = compat_cpu_task(mjx_task)
    qpos, qvel, actions, labels = scenario_batch(cpu_task, n_per, steps)
    runs = {}
    for name, task in (("cpu", cpu_task), ("compat", compat), ("mjx", mjx_task)):
        t0 = time.time()
        runs[name] = rollout(task, qpos, qvel, actions)
        runs[f"{name}_seconds"] = time.time() - t0
    result = {}
    for a, b in (("cpu", "compat"), ("compat", "mjx"), ("cpu", "mjx")):
        for scen in scenarios(task_name):
            result[(f"{a}~{b}", scen)] = max_diff(runs[a], runs[b], labels, scen)
    result["seconds"] = {k: v for k, v in runs.items() if k.endswith("_seconds")}
    return result


def format_table(task_name: str, result: dict) -> str:
    lines = [f"### {task_name}", "", "| pair | scenario | qpos | qvel | reward | terms |", "|---|---|---|---|---|---|"]
    for key, diff in result.items():
        if key == "seconds":
            continue
        pair, scen = key

        def fmt(x):
            return " ".join(f"{v:.0e}" for v in x)

        lines.append(f"| {pair} | {scen} | {fmt(diff['qpos'])} | {fmt(diff['qvel'])} | {fmt(diff['reward'])} | "
                     f"{fmt(diff['terms'])} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", nargs="*", default=list(TASK_NAMES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--ls-iterations", type=int, default=50)
    a = p.parse_args()
    for name in a.tasks:
        result = measure(name, a.steps, solver_iterations=a.iterations, ls_iterations=a.ls_iterations)
        print(format_table(name, result))
        print(f"\n(seconds incl. compile: {result['seconds']})\n", flush=True)


if __name__ == "__main__":
    main()
