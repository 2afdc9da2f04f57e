"""Scripted-expert success rates: the real metaworld package (run by mw-oracle in its own environment,
envs/metaworld/oracle.py) vs the port (CPU backend and MJX backend).

For each task and episode i, a fresh goal-observable reference env is built with seed i (so each episode has its
own object/goal configuration, as in the package); the port replays the same configuration (same random reset
vector, same hand-reset start state). The package's scripted expert (metaworld.policies) acts on each side's own
observations for 500 steps. The MJX run also measures env steps/s of the vmapped batch and, on the same compiled
functions, the one-step parity against the package (envs/metaworld/parity.py). Two counts per side (see
facts/metaworld.md): success flag raised at any step, and success flag up at the last step (what the trainer
counts).

    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python scripts/metaworld_expert.py --episodes 10 \
        --backends reference cpu mjx --out /tmp/metaworld_expert.json

MJX on CPU is slow (one compile of ~1.5 min per task and ~0.5 s per vmapped step): all ten tasks take about an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import envs.metaworld as mw
from envs.metaworld.parity import _Compiled, run_parity


def success_flags(env, policy, obs, steps: int) -> list[bool]:
    """Run the scripted policy for `steps` steps from `obs` (gymnasium API); the success flag of every step."""
    flags = []
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy.get_action(obs))
        flags.append(bool(info["success"]))
    return flags


def run_reference(name: str, seeds, steps: int):
    """The package's expert in the package (mw-oracle runs the whole episode: one round trip)."""
    ever, last, rands = [], [], []
    for seed in seeds:
        env = mw.reference(name, seed=seed)
        env.reset()
        rands.append(np.array(env.rand_vec))
        flags = list(env.expert_rollout(steps)["info"]["success"] > 0.5)
        env.close()
        ever.append(any(flags))
        last.append(flags[-1])
    return ever, last, rands


def run_cpu(name: str, rands, steps: int):
    ever, last = [], []
    env = mw.make(name, rand_vec=rands[0]).cpu()  # reset_to runs the hand reset for each configuration
    for rand in rands:
        policy = mw.expert_policy(name)
        flags = success_flags(env, policy, env.reset_to(rand), steps)
        ever.append(any(flags))
        last.append(flags[-1])
    return ever, last


def run_mjx(name: str, rands, steps: int, parity_steps: int, parity_seed: int):
    """Expert episodes in MJX (one vmapped batch), then the one-step parity run on the same compiled functions."""
    import jax
    import jax.numpy as jnp

    ref = mw.reference(name, seed=parity_seed)
    ref.reset()
    task = mw.make(name, rand_vec=np.array(ref.rand_vec))
    compiled = _Compiled(task, batch=len(rands))
    hand_resets = [task.run_hand_reset(task.fixture_position(r)) for r in rands]
    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs), jnp.float32), *hand_resets)
    rand_batch = jnp.asarray(np.stack(rands), jnp.float32)
    policies = [mw.expert_policy(name) for _ in rands]
    t0 = time.time()
    state = compiled.reset_batch(rand_batch, stacked)
    obs = np.asarray(state.obs)
    flags = []
    compile_s = None
    for t in range(steps):
        actions = np.stack([p.get_action(o) for p, o in zip(policies, obs)]).astype(np.float32)
        state = compiled.step_batch(state, jnp.asarray(actions))
        obs = np.asarray(state.obs)
        flags.append(np.asarray(state.info["success"]) > 0.5)
        if t == 0:
            compile_s = time.time() - t0
            t0 = time.time()
    flags = np.stack(flags)
    step_s = (time.time() - t0) / max(steps - 1, 1)
    timing = dict(compile_s=compile_s, step_s=step_s, n_envs=len(rands),
                  env_steps_per_s=len(rands) / step_s)
    parity = None
    if parity_steps:
        result = run_parity(name, "mjx", steps=parity_steps, seed=parity_seed, resync=True, task=task,
                            compiled=compiled)
        parity = result.row()
    return [bool(x) for x in flags.any(0)], [bool(x) for x in flags[-1]], timing, parity


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="*", default=list(mw.CW10_NAMES))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--backends", nargs="*", default=["reference", "cpu", "mjx"])
    parser.add_argument("--parity-steps", type=int, default=100, help="one-step MJX parity steps (0: none)")
    parser.add_argument("--parity-seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file to merge results into")
    args = parser.parse_args()
    results = {}
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    for name in args.tasks:
        t0 = time.time()
        row = results.get(name, {})
        ever, last, rands = run_reference(name, range(args.episodes), args.steps)
        row["episode_success_ever_reference"] = [bool(x) for x in ever]
        if "reference" in args.backends:
            row["reference"] = dict(ever=float(np.mean(ever)), last=float(np.mean(last)), n=len(ever))
        if "cpu" in args.backends:
            ever_c, last_c = run_cpu(name, rands, args.steps)
            row["cpu"] = dict(ever=float(np.mean(ever_c)), last=float(np.mean(last_c)), n=len(ever_c))
        if "mjx" in args.backends:
            ever_m, last_m, timing, parity = run_mjx(name, rands, args.steps, args.parity_steps, args.parity_seed)
            row["mjx"] = dict(ever=float(np.mean(ever_m)), last=float(np.mean(last_m)), n=len(ever_m), **timing)
            if parity is not None:
                row["mjx_parity_resync"] = parity
        row["seconds"] = time.time() - t0
        results[name] = row
        print(name, json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
