"""What a plain script gets from `envs.make` on CPU, with and without the XLA:CPU workaround (envs/xla_cpu.py).

    python scripts/xla_cpu_flag_bench.py --tasks humanoidbench/h1_stand metaworld/push-v3 --num-envs 4 \
        --steps 20 --steps-off 3 --out docs/bench/xla_cpu_flag.json

Each (task, setting) runs in a fresh interpreter started without XLA_FLAGS, as a user's script is:
- "default": nothing set; `envs.make` sets the flag itself (jax's backend does not exist yet);
- "off": the script opts out first with XLA_FLAGS=--xla_cpu_use_fusion_emitters=true (what every script got before).
It times jit(vmap(env.step)) over `--num-envs` envs on fixed uniform random actions: the first call (compile) and
then env steps/s over `--steps` calls. A benchmark, not a test: on a shared machine the rates are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's envs/, not an installed copy
OPT_OUT = "--xla_cpu_use_fusion_emitters=true"


def child(task_name: str, setting: str, num_envs: int, steps: int) -> dict:
    """One measurement in this (fresh) process."""
    if setting == "off":
        os.environ["XLA_FLAGS"] = OPT_OUT
    import jax

    import envs

    env = envs.make(task_name)
    flags = os.environ.get("XLA_FLAGS")
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    state = reset(jax.random.split(jax.random.PRNGKey(0), num_envs))
    actions = jax.random.uniform(jax.random.PRNGKey(1), (steps + 1, num_envs, env.action_size), minval=-1, maxval=1)
    start = time.perf_counter()
    state = jax.block_until_ready(step(state, actions[0]))
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        state = step(state, actions[i + 1])
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    return {"task": task_name, "setting": setting, "xla_flags": flags, "backend": jax.default_backend(),
            "num_envs": num_envs, "steps": steps, "compile_and_first_call_s": round(first, 2),
            "timed_s": round(seconds, 3), "env_steps_per_s": round(steps * num_envs / seconds, 2),
            "load_average_1min": os.getloadavg()[0]}


def measure(task_name: str, setting: str, num_envs: int, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    command = [sys.executable, os.path.abspath(__file__), "--child", task_name, setting, str(num_envs), str(steps)]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["humanoidbench/h1_stand", "metaworld/push-v3"])
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed calls with the flag")
    parser.add_argument("--steps-off", type=int, default=3, help="timed calls without it (slow)")
    parser.add_argument("--out", help="write the JSON here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task_name, setting, num_envs, steps = args.child
        print(json.dumps(child(task_name, setting, int(num_envs), int(steps))))
        return
    rows = []
    for task_name in args.tasks:
        for setting, steps in (("default", args.steps), ("off", args.steps_off)):
            rows.append(measure(task_name, setting, args.num_envs, steps))
            print(json.dumps(rows[-1]), flush=True)
    result = {"command": sys.argv, "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                                               "load_average": os.getloadavg()}, "rows": rows}
    for task_name in args.tasks:
        on, off = (next(r for r in rows if r["task"] == task_name and r["setting"] == s) for s in ("default", "off"))
        print(f"{task_name}: {on['env_steps_per_s']} vs {off['env_steps_per_s']} env steps/s "
              f"({on['env_steps_per_s'] / off['env_steps_per_s']:.1f}x); first call {on['compile_and_first_call_s']} "
              f"vs {off['compile_and_first_call_s']} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
