"""The official SPHERE trainer (sphere-rl/sphere) on HumanoidBench h1_stand, built and run from its own pins.

    python scripts/official_sphere.py setup --src /work/.mirror/sphere-rl+sphere/repo --venv ~/.cache/sphere-official
    python scripts/official_sphere.py run --venv ~/.cache/sphere-official --steps 1000000 --num-envs 16 --seed 0 \
        --eval-every 50000 --out docs/learning/official_h1_stand_seed0.json

`setup` exports the official tree (from a git mirror at --commit, or a checkout), makes a Python 3.11 venv beside
it and installs the packages of the official uv.lock at their locked versions and hashes, minus the GPU-only ones
(DROPPED_ROOTS, DROPPED_EXTRAS, DROPPED_PACKAGES; each with its reason). HumanoidBench comes from the reference copy
of the same fork and commit (the lock's GitHub source is unreachable here). Everything else is the lock's.

`run` launches the official script scripts/moe/humanoidbench/run_moe_ppo_topk_sphere_gradscale.sh unchanged, with
the README's smoke-run overrides (seed, tasks=[h1_stand], num_envs, total_timesteps) plus eval_freq and
outputs_dir, and parses what it writes (evaluations.npz and its stdout) into one JSON of eval points.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_COMMIT = "ea6f6159d80486edfcc6f29cb3909dc377630629"  # the mirrored commit (docs: make quick start lightweight)
REFERENCE_HB = Path("/work/shared/reference/humanoid_bench")  # liruiluo/humanoid-bench @ 4687463, as in uv.lock
SCRIPT = "scripts/moe/humanoidbench/run_moe_ppo_topk_sphere_gradscale.sh"

# Direct dependencies of the official project that a CPU training run neither imports nor can use, with why.
DROPPED_ROOTS = {
    "tritonclient": "NVIDIA Triton inference-server client; never imported by src/ or env/",
    "torchaudio": "never imported by src/, env/ or humanoid_bench; CUDA build only",
    "torchvision": "never imported by src/, env/ or humanoid_bench; CUDA build only",
    "torchcfm": "flow-matching library, never imported; pulls torchvision/pytorch-lightning/jupyter via torchdyn",
}
# Extras of direct dependencies dropped: the CUDA jaxlib plugin (CPU jaxlib 0.5.0 instead, same XLA program).
DROPPED_EXTRAS = {("jax", "cuda12"): "jax-cuda12-plugin/pjrt + nvcc: CUDA backend for JAX; this run is CPU-only"}
# Transitive dependencies dropped although their parent stays.
DROPPED_PACKAGES = {"triton": "torch's GPU kernel compiler (torch.compile on CUDA); not loaded by `import torch`"}
# Packages that come from elsewhere than PyPI.
NOT_FROM_PYPI = {"humanoid-bench": f"git source unreachable; copied from {REFERENCE_HB} (same fork, same commit), "
                                   "whose copy leaves out humanoid_bench/mjx/: its flax_to_torch module is replaced "
                                   "by MJX_STUB (the hierarchical reaching wrappers' torch policy; h1_stand never "
                                   "builds one, and the stub raises if anything does)",
                 "sphere": "the project itself (virtual); run from the exported tree"}

# humanoid_bench/wrappers.py imports TorchModel, TorchPolicy at module level; only SingleReachWrapper and the
# DoubleReach wrappers (policy_type=reach_*) construct them.
MJX_STUB = '''"""Stand-in written by purejaxsphere scripts/official_sphere.py: the reference copy has no mjx/."""


class TorchModel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("humanoid_bench.mjx is not installed (reaching policies only)")


TorchPolicy = TorchModel
'''


def lock_packages(lock_path: Path) -> dict[str, dict[str, Any]]:
    """The uv.lock packages by name."""
    return {p["name"]: p for p in tomllib.loads(lock_path.read_text())["package"]}


def _applies(dep: dict[str, Any]) -> bool:
    """Whether a lock dependency's environment marker holds for this interpreter (the venv's is the same 3.11)."""
    return "marker" not in dep or Marker(dep["marker"]).evaluate()


def install_set(packages: dict[str, dict[str, Any]], root: str = "sphere") -> list[str]:
    """Names of the locked packages a CPU run installs: the closure of `root`'s deps minus the dropped ones."""
    seen: set[str] = set()
    todo = [(d["name"], tuple(d.get("extra", ()))) for d in packages[root]["dependencies"]
            if d["name"] not in DROPPED_ROOTS and _applies(d)]
    while todo:
        name, extras = todo.pop()
        pkg = packages[name]
        if name not in seen:
            seen.add(name)
            todo += [(d["name"], tuple(d.get("extra", ()))) for d in pkg.get("dependencies", ())
                     if d["name"] not in DROPPED_PACKAGES and _applies(d)]
        for extra in extras:
            if (name, extra) in DROPPED_EXTRAS:
                continue
            todo += [(d["name"], tuple(d.get("extra", ()))) for d in pkg["optional-dependencies"][extra]
                     if d["name"] not in DROPPED_PACKAGES and _applies(d)]
    return sorted(seen - set(NOT_FROM_PYPI))


def requirement_line(pkg: dict[str, Any]) -> str:
    """`name==version --hash=...` with every artifact hash the lock records, for pip --require-hashes."""
    artifacts = list(pkg.get("wheels", ())) + ([pkg["sdist"]] if "sdist" in pkg else [])
    hashes = " ".join(f"--hash={a['hash']}" for a in artifacts)
    return f"{pkg['name']}=={pkg['version']} {hashes}"


def export_tree(src: Path, commit: str, work: Path) -> str:
    """Copy the official tree into `work`: `git archive` of `commit` from a git directory, else a plain copy."""
    work.mkdir(parents=True, exist_ok=True)
    if (src / "HEAD").exists() or (src / ".git").exists():
        full = subprocess.run(["git", "-C", str(src), "rev-parse", f"{commit}^{{commit}}"], check=True,
                              capture_output=True, text=True).stdout.strip()
        archive = subprocess.run(["git", "-C", str(src), "archive", full], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        return full
    shutil.copytree(src, work, dirs_exist_ok=True)
    return "copy of " + str(src)


def dir_size(path: Path) -> int:
    """Bytes under `path` (files only, links not followed)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def setup(args: argparse.Namespace) -> None:
    """Export the tree, build the venv from the lock, record what was installed and every deviation."""
    start = time.time()
    venv = Path(args.venv).resolve()
    work = venv / "sphere"
    commit = export_tree(Path(args.src), args.commit, work)
    use_cpu_jax(work / "scripts/common/setup_env.sh")
    packages = lock_packages(work / "uv.lock")
    names = install_set(packages)
    subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
    reqs = venv / "requirements-lock.txt"
    reqs.write_text("\n".join(requirement_line(packages[n]) for n in names) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run(pip + ["install", "-q", "--no-deps", "--require-hashes", "-r", str(reqs)], check=True)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", where], check=True, capture_output=True,
                               text=True).stdout.strip())
    shutil.copytree(REFERENCE_HB, site / "humanoid_bench", dirs_exist_ok=True)
    (site / "humanoid_bench" / "mjx").mkdir(exist_ok=True)
    (site / "humanoid_bench" / "mjx" / "__init__.py").write_text("")
    (site / "humanoid_bench" / "mjx" / "flax_to_torch.py").write_text(MJX_STUB)
    # setup_env.sh sources .venv/bin/activate of the tree it runs in.
    (work / ".venv").unlink(missing_ok=True)
    (work / ".venv").symlink_to(venv)
    record = {
        "official_commit": commit, "installed": {n: packages[n]["version"] for n in names},
        "deviations": {"dropped_roots": DROPPED_ROOTS,
                       "dropped_extras": {f"{k[0]}[{k[1]}]": v for k, v in DROPPED_EXTRAS.items()},
                       "dropped_packages": DROPPED_PACKAGES, "not_from_pypi": NOT_FROM_PYPI,
                       "run_env": RUN_ENV_NOTE},
        "setup_seconds": round(time.time() - start, 1), "venv_bytes": dir_size(venv),
    }
    (venv / "setup.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("official_commit", "setup_seconds", "venv_bytes")}))

# The one line of the exported tree that is changed: JAX 0.5.0 with JAX_PLATFORM_NAME=gpu and no CUDA plugin fails
# ("Unknown backend: 'gpu' requested"), and JAX_PLATFORMS=cpu does not override it, so setup_env.sh must say cpu.
PLATFORM_LINE = ("export JAX_PLATFORM_NAME=gpu", "export JAX_PLATFORM_NAME=cpu")
RUN_ENV_NOTE = (f"scripts/common/setup_env.sh: `{PLATFORM_LINE[0]}` -> `{PLATFORM_LINE[1]}` (JAX 0.5.0 refuses 'gpu' "
                "without the CUDA plugin, and JAX_PLATFORMS does not override it); the run script itself and the rest "
                "of setup_env.sh (OMP_NUM_THREADS=8, XLA_FLAGS, ...) are unchanged")


def use_cpu_jax(setup_env: Path) -> None:
    """Rewrite setup_env.sh's JAX platform line to cpu; refuse a file that does not have exactly that line."""
    text = setup_env.read_text()
    if text.count(PLATFORM_LINE[0] + "\n") != 1:
        raise ValueError(f"{setup_env} does not export JAX_PLATFORM_NAME=gpu once; not the expected official tree")
    setup_env.write_text(text.replace(PLATFORM_LINE[0] + "\n", PLATFORM_LINE[1] + "\n"))


def official_overrides(steps: int, num_envs: int, seed: int, eval_every: int, outputs: Path) -> list[str]:
    """The Hydra overrides appended to the official script (its own list stays; later values win in Hydra).

    The README's smoke-run overrides (seed, tasks, total_timesteps, num_envs), then eval_freq (EvalCallback fires
    every eval_freq // num_envs vector steps: between rollouts' env steps, it does not touch the training data) and
    outputs_dir (where it writes)."""
    return [f"seed={seed}", "tasks=[h1_stand]", f"total_timesteps={steps}", f"num_envs={num_envs}",
            f"eval_freq={eval_every}", f"outputs_dir={outputs}"]


_EVAL = re.compile(r"^Eval num_timesteps=(\d+), episode_reward=(-?[\d.]+) \+/- ([\d.]+)$")
_SUCCESS = re.compile(r"^Success: ([\d.]+)%$")
# SB3's stdout table after each rollout-log interval, keys sorted: time/fps, iterations, time_elapsed, total_timesteps.
_TIME = re.compile(r"^\|\s+fps\s+\|\s+(\d+)\s+\|\n\|\s+iterations\s+\|\s+\d+\s+\|\n"
                   r"\|\s+time_elapsed\s+\|\s+(\d+)\s+\|\n\|\s+total_timesteps\s+\|\s+(\d+)\s+\|$", re.MULTILINE)


def parse_stdout(text: str) -> dict[str, Any]:
    """Eval points (steps, mean return, success) and SB3's (env steps, seconds since learn() began, fps) rows."""
    evals = []
    lines = [ln.strip() for ln in text.splitlines()]
    for k, line in enumerate(lines):
        if m := _EVAL.match(line):
            success = next(_SUCCESS.match(x) for x in lines[k + 1:k + 4] if _SUCCESS.match(x))
            evals.append({"env_steps": int(m[1]), "return": float(m[2]), "return_std": float(m[3]),
                          "success": float(success[1]) / 100})
    timing = [{"env_steps": int(steps), "seconds": int(sec), "sb3_fps": int(fps)}
              for fps, sec, steps in _TIME.findall("\n".join(lines))]
    return {"evals": evals, "timing": timing}


def training_rate(timing: list[dict[str, int]]) -> float | None:
    """Env steps/s between SB3's first and last log rows: training and evaluation, without start-up and the first
    compilation (which fall before the first row). None with fewer than two rows."""
    if len(timing) < 2 or timing[-1]["seconds"] == timing[0]["seconds"]:
        return None
    first, last = timing[0], timing[-1]
    return (last["env_steps"] - first["env_steps"]) / (last["seconds"] - first["seconds"])


def parse_run(output_dir: Path, stdout: str) -> dict[str, Any]:
    """Eval points from evaluations.npz (per-episode returns, full precision) joined with stdout's success.

    The two logs are written independently by the official EvalCallback; they must name the same eval steps and the
    same mean return (stdout prints it to 2 decimals), else the log is not one run's and we refuse it."""
    npz = np.load(output_dir / "evaluations.npz")
    log = parse_stdout(stdout)
    if [e["env_steps"] for e in log["evals"]] != npz["timesteps"].tolist():
        raise ValueError(f"eval steps differ: stdout {[e['env_steps'] for e in log['evals']]}, "
                         f"npz {npz['timesteps'].tolist()}")
    evals = []
    for e, returns, lengths in zip(log["evals"], npz["results"], npz["ep_lengths"]):
        mean = float(np.mean(returns))
        if abs(mean - e["return"]) > 0.0051:
            raise ValueError(f"mean return at {e['env_steps']}: npz {mean}, stdout {e['return']}")
        evals.append({"env_steps": e["env_steps"], "return": mean, "return_std": float(np.std(returns)),
                      "success": e["success"], "episodes": len(returns), "mean_length": float(np.mean(lengths)),
                      "episode_returns": [float(r) for r in returns]})
    rate = training_rate(log["timing"])
    return {"evals": evals, "timing": log["timing"],
            "env_steps_per_second_training": None if rate is None else round(rate, 1)}


def evaluations_written_since(outputs: Path, start: float) -> Path:
    """The one evaluations.npz under `outputs` written at or after `start` (time.time()).

    The official trainer writes each run under a new timestamped folder, so a rerun with the same --out (and so the
    same outputs_dir) leaves the earlier runs' files beside this one's: only this run's may be read."""
    fresh = [p for p in outputs.rglob("evaluations.npz") if p.stat().st_mtime >= start]
    if len(fresh) != 1:
        raise ValueError(f"expected one evaluations.npz written by this run under {outputs}, found {len(fresh)}: "
                         f"{[str(p) for p in fresh]}")
    return fresh[0]


def run(args: argparse.Namespace) -> None:
    """Launch the official script on h1_stand and write its eval points, wall time and env steps/s as JSON."""
    venv = Path(args.venv).resolve()
    work = venv / "sphere"
    out = Path(args.out).resolve()
    outputs = Path(args.outputs or Path("runs/official_sphere") / out.stem).resolve()
    outputs.mkdir(parents=True, exist_ok=True)
    cmd = ["bash", SCRIPT] + official_overrides(args.steps, args.num_envs, args.seed, args.eval_every, outputs)
    stdout, stderr = outputs / "stdout.log", outputs / "stderr.log"  # streamed, to follow a long run with tail -f
    start = time.time()
    with stdout.open("w") as out_f, stderr.open("w") as err_f:
        code = subprocess.run(cmd, cwd=work, env=dict(os.environ), stdout=out_f, stderr=err_f,
                              check=False).returncode
    wall = time.time() - start
    # Kept beside the logs before parsing, so a parser failure after a long run loses nothing.
    (outputs / "run.json").write_text(json.dumps({"command": cmd, "returncode": code, "wall_seconds": wall}) + "\n")
    if code:
        sys.exit(f"official run failed ({code}); see {stderr}:\n" + stderr.read_text()[-3000:])
    npz = evaluations_written_since(outputs, start)
    result = parse_run(npz.parent, stdout.read_text())
    total = args.steps + (-args.steps) % (args.num_envs * 16)  # SB3 runs whole rollouts of n_steps=16
    commit = json.loads((venv / "setup.json").read_text())["official_commit"]
    result.update({"total_timesteps": total, "trainer": "official sphere-rl/sphere", "commit": commit,
                   "task": "h1_stand", "seed": args.seed, "num_envs": args.num_envs, "command": cmd,
                   "wall_seconds": round(wall, 1), "env_steps_per_second_wall": round(total / wall, 1),
                   "output_dir": str(npz.parent)})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    keys = ("total_timesteps", "wall_seconds", "env_steps_per_second_wall", "env_steps_per_second_training")
    evals = [(e["env_steps"], round(e["return"], 2), e["success"]) for e in result["evals"]]
    print(json.dumps({k: result[k] for k in keys} | {"evals": evals}))

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="export the official tree and build its venv from uv.lock")
    s.add_argument("--src", required=True, help="git mirror (bare or not) or a checkout of sphere-rl/sphere")
    s.add_argument("--venv", required=True, help="directory for the venv; the tree goes to VENV/sphere")
    s.add_argument("--commit", default=OFFICIAL_COMMIT, help="commit to export from a git mirror")
    s.add_argument("--python", default="python3.11", help="interpreter for the venv (the lock wants 3.11)")
    r = sub.add_parser("run", help="the official h1_stand SPHERE grad-mode run, parsed into JSON")
    r.add_argument("--venv", required=True, help="a venv made by `setup`")
    r.add_argument("--steps", type=int, required=True, help="total_timesteps (env steps)")
    r.add_argument("--num-envs", type=int, default=16)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--eval-every", type=int, default=50_000, help="eval_freq in env steps (official: 100,000)")
    r.add_argument("--out", required=True, help="JSON to write")
    r.add_argument("--outputs", default=None, help="the official outputs_dir: logs, checkpoints "
                   "(default: runs/official_sphere/<--out's name without .json>)")
    args = parser.parse_args()
    {"setup": setup, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
