"""Parity figures of the MetaWorld port against the real package, run by mw-oracle (docs/parity_metaworld.md).

For each task: the reference env (seed) and the port start from the same configuration; the package's scripted
expert acts on the reference's observations; the port takes the same actions. Reported per backend (cpu: the
gymnasium env on C MuJoCo with the untouched model; jax-cpu: the JAX task with physics="cpu"; mjx: the rewritten
model in MJX) and mode (one-step with state re-sync / open loop): max and median |obs - obs_ref|, split into
hand+gripper, objects and goal; max |reward - reward_ref|; max error of each info term; steps where the success
flags differ.

    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python scripts/metaworld_parity.py --backends cpu mjx \
        --steps 150 --out /tmp/metaworld_parity.json
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="*", default=list(mw.CW10_NAMES))
    parser.add_argument("--backends", nargs="*", default=["cpu", "mjx"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file to merge results into")
    args = parser.parse_args()
    results = {}
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    for name in args.tasks:
        for backend in args.backends:
            t0 = time.time()
            ref = mw.reference(name, seed=args.seed)
            ref.reset()
            ref.close()
            physics = "cpu" if backend == "jax-cpu" else "mjx"
            task = mw.make(name, rand_vec=np.array(ref.rand_vec), physics=physics)
            compiled = _Compiled(task) if backend in ("mjx", "jax-cpu") else None
            for resync in (True, False):
                r = run_parity(name, backend, steps=args.steps, seed=args.seed, resync=resync, task=task,
                               compiled=compiled)
                row = r.row()
                row.pop("obs_err_trace")
                row["seconds"] = time.time() - t0
                results[f"{name}|{backend}|{'resync' if resync else 'open'}"] = row
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "w") as f:
                        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
