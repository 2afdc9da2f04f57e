"""Raw env throughput of a MetaWorld task: jit(vmap(step)) over N envs, random actions, physics mjx or cpu.

    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python scripts/metaworld_bench.py --task push-v3 \
        --physics cpu mjx --num-envs 16 --steps 20

Prints compile time (first call) and env steps/s. On a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax

import envs.metaworld as mw


def throughput(task_name: str, physics: str, num_envs: int, steps: int) -> dict:
    task = mw.make(task_name, physics=physics)
    reset = jax.jit(jax.vmap(task.reset))
    step = jax.jit(jax.vmap(task.step))
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    state = reset(keys)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (steps + 1, num_envs, 4), minval=-1.0, maxval=1.0)
    t0 = time.time()
    state = step(state, actions[0])
    jax.block_until_ready(state.obs)
    first = time.time() - t0
    t0 = time.time()
    for i in range(steps):
        state = step(state, actions[i + 1])
    jax.block_until_ready(state.obs)
    per_step = (time.time() - t0) / steps
    return dict(task=task_name, physics=physics, num_envs=num_envs, compile_and_first_s=round(first, 1),
                step_ms=round(per_step * 1000, 1), env_steps_per_s=round(num_envs / per_step, 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="push-v3")
    parser.add_argument("--physics", nargs="+", default=["cpu", "mjx"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[16])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    for physics in args.physics:
        for n in args.num_envs:
            print(throughput(args.task, physics, n, args.steps), flush=True)


if __name__ == "__main__":
    main()
