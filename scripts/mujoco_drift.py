"""How far the ports' C MuJoCo physics moves from the real benchmarks when this process runs another MuJoCo.

The references keep their own engines: hb-oracle runs HumanoidBench on MuJoCo 3.1.6 and mw-oracle runs metaworld
3.1.1 on MuJoCo 3.3.0, each in its own virtual environment. This script puts another MuJoCo (and its MJX) in front of
the installed one for this process only (`--mujoco-dir`, inserted into sys.path; not PYTHONPATH, which the oracle
subprocesses would inherit), then measures the ports' C MuJoCo backends against the oracles:

- HumanoidBench (h1_stand, h1_slide): the gym env (`env.cpu()`, float64) from HumanoidBench's own reset (seed 0),
  under the oracle's 10 random actions: max |qpos - qpos_ref| after each control step; and the number of contacts
  at the reset state (the feet on the floor).
- MetaWorld (the CW10 tasks): envs/metaworld/parity.py's `run_parity` on the gym env, seed 1, the package's
  scripted expert: reset observation error, one-step (state re-synced every step) and open-loop max observation and
  reward errors, and the steps where the success flags differ.

    pip install --no-deps --target /tmp/mujoco/3.12.0 mujoco==3.12.0 mujoco-mjx==3.12.0
    python scripts/mujoco_drift.py --mujoco-dir /tmp/mujoco/3.12.0 --out /tmp/drift_3.12.0.json

Without --mujoco-dir it measures the installed MuJoCo. docs/install.md ("The stack") has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HB_ORACLE = Path(os.environ.get("HB_ORACLE", ROOT.parent / "shared/reference/hb-oracle"))
HB_TASKS = ("h1_stand", "h1_slide")
HB_STEPS = 10


def humanoidbench_drift(task: str, tmp: Path) -> dict:
    """Per-step max |qpos - qpos_ref| of the gym env against hb-oracle, and the contacts at the reset state."""
    import numpy as np

    import envs

    out = tmp / f"{task}.npz"
    subprocess.run([str(HB_ORACLE), "rollout", task, "--out", str(out), "--seed", "0", "--steps", str(HB_STEPS)],
                   check=True, capture_output=True, timeout=900)
    ref = dict(np.load(out))
    gym_env = envs.make(f"humanoidbench/{task}", physics="cpu").cpu()
    gym_env.reset(seed=0)  # HumanoidBench's reset noise for seed 0, the oracle's qpos[0]; then mj_forward
    reset_contacts = int(gym_env.data.ncon)
    errors = []
    for t in range(len(ref["action"])):
        obs, *_ = gym_env.step(ref["action"][t])
        errors.append(float(np.abs(obs[: ref["qpos"].shape[1]] - ref["qpos"][t + 1]).max()))
    return {"qpos_err_per_step": errors, "reset_contacts": reset_contacts}


def metaworld_drift(name: str, steps: int) -> dict:
    """Reset, one-step and open-loop errors of the gym env against mw-oracle (seed 1, scripted expert)."""
    from envs.metaworld.parity import run_parity

    one = run_parity(name, backend="cpu", steps=steps, seed=1, resync=True)
    open_loop = run_parity(name, backend="cpu", steps=steps, seed=1, resync=False)
    return {"reset_obs_err": one.reset_obs_err, "one_step_obs_err": one.obs_err,
            "one_step_reward_err": one.reward_err, "one_step_success_mismatch": one.success_mismatch,
            "open_loop_obs_err": open_loop.obs_err, "open_loop_reward_err": open_loop.reward_err,
            "open_loop_success_mismatch": open_loop.success_mismatch,
            "success_steps_ref": open_loop.success_steps_ref, "success_steps_port": open_loop.success_steps_port}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mujoco-dir", default=None, help="a folder holding another mujoco (and mujoco-mjx)")
    parser.add_argument("--metaworld-steps", type=int, default=100)
    parser.add_argument("--out", default=None, help="JSON to write")
    args = parser.parse_args()
    if args.mujoco_dir:
        sys.path.insert(0, str(Path(args.mujoco_dir).resolve()))
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
    sys.path.insert(1, str(ROOT))
    import mujoco

    import envs.metaworld as mw

    result = {"mujoco": mujoco.__version__, "humanoidbench": {}, "metaworld": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for task in HB_TASKS:
            result["humanoidbench"][task] = row = humanoidbench_drift(task, Path(tmp))
            print(json.dumps({"mujoco": mujoco.__version__, "task": task, **row}), flush=True)
    for name in mw.CW10_NAMES:
        result["metaworld"][name] = row = metaworld_drift(name, args.metaworld_steps)
        print(json.dumps({"mujoco": mujoco.__version__, "task": name, **row}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
