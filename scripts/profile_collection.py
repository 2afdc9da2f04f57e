"""Where the trainer's collection phase spends its time, against raw env stepping (timing of variants).

    python scripts/profile_collection.py [--task T] [--num-envs N] [--seeds S] [--min-seconds 5] [--out F.json]
        [--donation] [hydra overrides]

Times, on one task and batch shape (all through purejaxsphere.bench's timing helpers):
- raw:             jit(vmap(task.step)) scan, random actions (the bare task)
- raw_wrapped:     the same through the trainer's wrappers (padding, episodes, auto-reset)
- rollout:         the trainer's rollout (`train.make_rollout_fn`)
- rollout_null:    the same rollout on a physics-free task of the same sizes (envs.testing.PointMass: policy
                   inference, normalizer, wrappers' bookkeeping and trajectory storage only)
- actor:           n_steps of the rollout's network call alone (the actor; the critic runs after the rollout)
and, on the CPU physics backend, the seconds spent inside the host callback (C MuJoCo, thread pool) per rollout.
Static checks of the compiled programs: host callbacks per rollout step (custom calls in the HLO), float64 values
in the rollout and chunk programs. With --donation: the trainer's chunk program against the same program with its
input state donated. All variants are compiled first, then timed in turns (purejaxsphere.bench.time_interleaved).
--recompiles instead trains the task twice in a row and counts XLA compilations between progress reports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from purejaxsphere.cli import configure_xla  # no jax import yet
from purejaxsphere.config import Config, load_config


def network_scan(trainer: Any, length: int) -> Callable:
    """(obs [S, N, obs], params) -> sums: `length` steps of the rollout's network calls on fixed observations."""
    import jax
    import jax.numpy as jnp

    from purejaxsphere.programs import map_members

    actor = trainer.nets.actor.apply

    def one_seed(obs, actor_params):
        def body(total, i):
            x = obs + i * 1e-6  # a new input every step (no hoisting out of the loop)
            return total + jnp.sum(actor(actor_params, x).mean), None

        return jax.lax.scan(body, jnp.zeros(()), jnp.arange(length, dtype=jnp.float32))[0]

    return map_members(one_seed)


def hlo_stats(compiled: Any) -> dict[str, Any]:
    """Host callbacks and float64 values in a compiled program's optimized HLO, and XLA's cost estimate (flops and
    bytes accessed of one call; loop bodies count once per XLA's analysis, so compare programs of equal loops)."""
    text = compiled.as_text()
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, list) else cost
    return {
        "host_callbacks": len(re.findall(r"custom_call_target=\"[^\"]*callback[^\"]*\"", text)),
        "f64_values": len(re.findall(r"\bf64\[", text)),
        "while_loops": len(re.findall(r"\bwhile\(", text)),
        "flops": float(cost.get("flops", float("nan"))),
        "bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
    }


class CallbackClock:
    """Adds up the seconds a CpuPhysics spends in its host step (the host side of each round trip), per program."""

    def __init__(self, physics: Any):
        self.running = 0.0
        self.totals: dict[str, list[float]] = {}  # name -> [callback seconds, program calls]
        inner = physics._host_step

        def timed(*args: Any, **kwargs: Any) -> Any:
            tick = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.running += time.perf_counter() - tick

        physics._host_step = timed

    def wrap(self, name: str, call: Callable) -> Callable:
        def clocked(carry: Any) -> Any:
            self.running = 0.0
            out = call(carry)
            total = self.totals.setdefault(name, [0.0, 0])
            total[0] += self.running
            total[1] += 1
            return out

        return clocked

    def per_call(self) -> dict[str, float]:
        return {name: seconds / calls for name, (seconds, calls) in self.totals.items() if seconds > 0}


def null_rollout_program(trainer: Any, state: Any, steps: int) -> Any:
    """The trainer's rollout on a physics-free task of the first task's sizes (the shared test point mass,
    envs.testing.PointMass: a few flops a step): policy inference and bookkeeping alone."""
    import jax

    from envs.core import training_env
    from envs.testing import PointMass
    from purejaxsphere import bench
    from purejaxsphere.programs import make_rollout_fn, map_members

    task, cfg = trainer.tasks[0], trainer.cfg
    env = training_env(PointMass(task.episode_length, action_size=task.action_size,
                                 observation_size=task.observation_size))
    env_state = jax.vmap(lambda key: state_for(env, key, cfg.num_envs))(
        jax.random.split(jax.random.PRNGKey(0), len(trainer.seeds)))
    rollout = map_members(make_rollout_fn(env, trainer.nets, cfg))
    return bench.jax_program(rollout, state.replace(env_state=env_state), steps, with_outputs=True)


def profile(cfg: Config, min_seconds: float, donation: bool) -> dict[str, Any]:
    import jax

    from purejaxsphere import bench
    from purejaxsphere.driver import Trainer
    from purejaxsphere.programs import make_chunk_fn, make_rollout_fn, map_members

    cfg = bench.bench_setup(cfg, 1)
    trainer = Trainer(cfg)
    task, n_seeds = trainer.tasks[0], len(trainer.seeds)
    batch, length = cfg.num_envs * n_seeds, cfg.ppo.n_steps
    steps = batch * length
    out: dict[str, Any] = {"setup": bench.setup_summary(cfg, n_seeds), "load_start": bench.load_average()}
    programs: dict[str, bench.Program] = {}
    env = trainer.programs(0).env
    programs["raw"] = bench.raw_env_program(task, batch, length)
    programs["raw_wrapped"] = bench.raw_env_program(env, batch, length)
    out["raw_hlo"] = hlo_stats(programs["raw"].compiled)
    out["raw_wrapped_hlo"] = hlo_stats(programs["raw_wrapped"].compiled)

    state = trainer.start_task(0, None)
    rollout = map_members(make_rollout_fn(env, trainer.nets, cfg))
    programs["rollout"] = bench.jax_program(rollout, state, steps, with_outputs=True)
    out["rollout_hlo"] = hlo_stats(programs["rollout"].compiled)

    programs["rollout_null"] = null_rollout_program(trainer, state, steps)
    out["rollout_null_hlo"] = hlo_stats(programs["rollout_null"].compiled)

    actor = network_scan(trainer, length)
    args = (state.env_state.obs, state.actor_params)
    programs["actor"] = bench.jax_program(lambda a: (a, actor(*a)), args, steps, with_outputs=True)

    chunk, chunk_compile = trainer.compiled_chunk(0, state)
    out["chunk_hlo"] = hlo_stats(chunk)
    n_updates = trainer.chunk_updates(0)
    programs["chunk"] = bench.Program(lambda s: chunk(s, n_updates)[0], state, steps, chunk_compile)
    if donation:
        plan = trainer.plan
        chunk_fn = map_members(make_chunk_fn(env, trainer.nets, cfg, plan.updates_per_chunk, plan.total_updates))
        tick = time.perf_counter()
        donated = jax.jit(chunk_fn, donate_argnums=0).lower(state).compile()
        programs["chunk_donated"] = bench.Program(lambda s: donated(s)[0], trainer.start_task(0, None), steps,
                                                  time.perf_counter() - tick)

    physics = getattr(getattr(task, "backend", None), "physics", None)  # a CPU backend's CpuPhysics
    if physics is not None:
        clock = CallbackClock(physics)
        for name, program in programs.items():
            program.call = clock.wrap(name, program.call)
    out["load_timing"] = bench.load_average()
    timings = bench.time_interleaved(programs, min_seconds)
    if physics is not None:
        out["host_callback_seconds_per_call"] = clock.per_call()
    out["timings"] = {name: t.as_dict() for name, t in timings.items()}
    out["load_end"] = bench.load_average()
    return out


def recompile_check(cfg: Config, n_chunks: int = 3) -> list[dict[str, Any]]:
    """Train `cfg`'s first task twice in a row (tasks [T, T]) for `n_chunks` chunks each and count the XLA backend
    compilations between consecutive progress reports (task compile, every chunk + its evaluation, task ends)."""
    import dataclasses

    import jax

    from purejaxsphere.driver import make_train

    compiles: list[float] = []

    def listener(event: str, duration: float, **_: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    cfg = dataclasses.replace(cfg, tasks=[cfg.tasks[0]] * 2, total_timesteps=n_chunks * cfg.eval.interval)
    rows: list[dict[str, Any]] = []
    seen = [0]

    def progress(done: int, message: str) -> None:
        rows.append({"done": done, "message": message, "compiles": len(compiles) - seen[0],
                     "compile_seconds": round(sum(compiles[seen[0]:]), 2)})
        seen[0] = len(compiles)

    make_train(cfg)(progress=progress)
    rows.append({"done": None, "message": "end (final evaluations)", "compiles": len(compiles) - seen[0],
                 "compile_seconds": round(sum(compiles[seen[0]:]), 2)})
    return rows


def state_for(env: Any, key: Any, num_envs: int) -> Any:
    import jax

    return jax.vmap(env.reset)(jax.random.split(key, num_envs))


def format_profile(result: dict[str, Any]) -> str:
    setup, timings = result["setup"], result["timings"]
    raw = timings["raw"]["best_seconds_per_call"]
    lines = [f"{setup['task']} physics={setup['physics']} num_envs={setup['num_envs']} seeds={setup['seeds']} "
             f"n_steps={setup['n_steps']} actor={setup['actor']} E={setup['n_experts']} {setup['hidden_sizes']}; "
             f"load {result['load_start']} -> {result['load_timing']} -> {result['load_end']}",
             "ms per call of n_steps x envs (chunk: of one PPO update); callback: mean ms per call in the host step",
             f"{'variant':<16}{'best ms':>10}{'x raw':>8}{'median ms':>11}{'callback ms':>13}{'steps/s':>11}"]
    callbacks = result.get("host_callback_seconds_per_call", {})
    for name, t in timings.items():
        ms = t["best_seconds_per_call"] * 1e3
        callback = f"{callbacks[name] * 1e3:.2f}" if name in callbacks else "-"
        lines.append(f"{name:<16}{ms:>10.2f}{ms / (raw * 1e3):>8.2f}{t['median_seconds_per_call'] * 1e3:>11.2f}"
                     f"{callback:>13}{t['steps_per_s']:>11,.0f}")
    for key in ("raw_hlo", "raw_wrapped_hlo", "rollout_hlo", "rollout_null_hlo", "chunk_hlo"):
        if key in result:
            lines.append(f"{key}: {result[key]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task")
    parser.add_argument("--num-envs", type=int)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--donation", action="store_true", help="also time the chunk program with donated input")
    parser.add_argument("--recompiles", action="store_true",
                        help="only count compilations while training the task twice in a row (tasks [T, T])")
    parser.add_argument("--out")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = list(args.overrides) + [f"seeds={args.seeds}"]
    overrides += [f"tasks=[{args.task}]"] if args.task else []
    overrides += [f"num_envs={args.num_envs}"] if args.num_envs else []
    cfg = load_config(*overrides)
    cfg.tasks = cfg.tasks[:1]
    configure_xla(cfg)
    if args.recompiles:
        result: Any = recompile_check(cfg)
        for row in result:
            print(row)
    else:
        result = profile(cfg, args.min_seconds, args.donation)
        print(format_profile(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
