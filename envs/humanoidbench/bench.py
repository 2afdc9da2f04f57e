"""Raw env throughput: vmapped `step` of N envs inside one jitted `lax.scan`, random actions, no policy.

    python -m envs.humanoidbench.bench --task h1_stand --physics cpu mjx --num-envs 16 128 [--steps 20]
        [--iterations 100 --ls-iterations 50]
prints compile time and env steps/s per (physics, num_envs). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import time

import jax

from envs.humanoidbench import make_task


def throughput(task_name: str, physics: str, num_envs: int, steps: int, **kwargs) -> dict:
    env = make_task(task_name, physics=physics, **kwargs)

    @jax.jit
    def run(states, key):
        def body(carry, k):
            s = carry
            a = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(s, a), ()

        return jax.lax.scan(body, states, jax.random.split(key, steps))[0]

    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
    t0 = time.time()
    out = run(states, jax.random.PRNGKey(1))
    jax.block_until_ready(out.obs)
    first = time.time() - t0
    t0 = time.time()
    out = run(states, jax.random.PRNGKey(2))
    jax.block_until_ready(out.obs)
    elapsed = time.time() - t0
    return {"task": task_name, "physics": physics, "num_envs": num_envs, "compile_and_first_s": round(first, 1),
            "steps_per_s": round(num_envs * steps / elapsed, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="h1_stand")
    p.add_argument("--physics", nargs="+", default=["cpu", "mjx"])
    p.add_argument("--num-envs", nargs="+", type=int, default=[16, 128])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--ls-iterations", type=int, default=None)
    a = p.parse_args()
    for physics in a.physics:
        kwargs = {}
        if physics == "mjx":
            if a.iterations is not None:
                kwargs["solver_iterations"] = a.iterations
            if a.ls_iterations is not None:
                kwargs["ls_iterations"] = a.ls_iterations
        for n in a.num_envs:
            print(throughput(a.task, physics, n, a.steps, **kwargs), flush=True)


if __name__ == "__main__":
    main()
