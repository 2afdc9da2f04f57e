"""Validate a GPU machine in one command (scripts/gpu_check.sh runs this): the stack, `purejaxsphere bench` at the
paper's shape on MJX and MJX-Warp physics (h1_stand and a MetaWorld task), a real 5-seed CRL run of two
HumanoidBench tasks, XLA's memory plan and peak device memory, all as JSON in one folder.

    scripts/gpu_check.sh [OUT_DIR] [--allow-cpu] [--budget-s 470]

Every step is the project's own CLI (`purejaxsphere bench` / `train`) in a subprocess with a time limit; a step
that does not fit the time left is skipped, one that runs past its limit is stopped, and the summary says which.
The programs go through JAX's persistent compilation cache (the config's `compile_cache`), so a second run skips
the compiles, and a step that did not fit on a cold cache may fit then.
The orchestrating process never imports jax (it would take the GPU from the steps). Nothing is installed and
nothing needs the network (W&B offline). Without a GPU it prints the stack and stops (exit 3) unless
`--allow-cpu`, which runs the same steps at a tiny shape on C MuJoCo physics (`bench --quick`): a test of this
script, not of the machine.

Exit codes: 0 all steps ran or were skipped for a stated reason, 1 a step failed or timed out, 3 no GPU device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from purejaxsphere.cli import BENCH_QUICK  # noqa: E402  (needs the sys.path insert above; jax-free)

NO_GPU_EXIT = 3
BUDGET_S = 470.0  # the whole check's wall time (stack probe included), under 8 minutes with a margin
STACK_PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "mujoco", "mujoco-mjx", "mujoco-warp",
                  "warp-lang", "brax", "flax", "optax", "numpy")
GPU_PLATFORMS = ("gpu", "cuda", "rocm")
H1_TASKS = ("humanoidbench/h1_stand", "humanoidbench/h1_walk")
METAWORLD_TASK = "metaworld/hammer-v3"
# The CRL run on a GPU: 2 tasks x 5 seeds x 20,480 steps (10 PPO updates of 128 envs x 16 steps per task, two
# chunks of 5 updates each, so every chunk boundary runs: evaluation, spectral diagnostics, checkpoint, W&B).
TRAIN_STEPS, TRAIN_INTERVAL = 20_480, 10_240
# --allow-cpu: the bench's quick shape (C MuJoCo physics, 4 envs, tiny networks) and a budget of 2 x 2 updates.
TINY_TRAIN = [o for o in BENCH_QUICK if not o.startswith(("benchmark=", "tasks="))]
TINY_STEPS, TINY_INTERVAL = 64, 32


@dataclasses.dataclass
class Step:
    """One CLI command to run, with its time limit and the JSON it writes (`bench --out`), if any."""

    name: str
    argv: list[str]  # arguments of `purejaxsphere`
    limit_s: float
    output: str | None = None


def bench_step(name: str, task: str, physics: str | None, out: Path, limit_s: float, quick: bool,
               benchmark: str, seeds: int = 5) -> Step:
    """`purejaxsphere bench` on `task`; at the paper's shape (the benchmark's 128 envs, 5 seeds), or `--quick`."""
    output = str(out / f"{name}.json")
    argv = ["bench", "--task", task, "--seeds", str(seeds), "--out", output]
    argv += ["--quick"] if quick else ["--min-seconds", "3", f"benchmark={benchmark}"]
    argv += [f"physics={physics}"] if physics else []
    return Step(name, argv, limit_s, output)


def plan_steps(out: Path, gpu: bool) -> list[Step]:
    """The steps in order. On a GPU: MJX and Warp physics at the paper's shape; with --allow-cpu on a CPU, the
    quick shape, whose physics is C MuJoCo (on MJX every program of it compiles the H1's step: ~4x longer, cli.py's
    BENCH_QUICK note), and Warp (refused there)."""
    quick = not gpu
    base = None if quick else "mjx"  # None: --quick's physics=cpu stands
    label = "cpu" if quick else "mjx"
    mw = METAWORLD_TASK.split("/")[1]
    train_run = out / "train_run"
    budget = [f"total_timesteps={TRAIN_STEPS}", f"eval.interval={TRAIN_INTERVAL}"] if gpu else \
        TINY_TRAIN + [f"total_timesteps={TINY_STEPS}", f"eval.interval={TINY_INTERVAL}", "eval.episodes=1"]
    return [
        bench_step(f"bench_h1_stand_{label}", H1_TASKS[0], base, out, 200, quick, "humanoidbench_h1"),
        bench_step("bench_h1_stand_warp", H1_TASKS[0], "warp", out, 200, quick, "humanoidbench_h1"),
        bench_step(f"bench_{mw}_{label}", METAWORLD_TASK, base, out, 100, quick, "metaworld_cw10"),
        bench_step(f"bench_{mw}_warp", METAWORLD_TASK, "warp", out, 100, quick, "metaworld_cw10"),
        Step("train_crl_h1", ["train", "benchmark=humanoidbench_h1", f"tasks=[{','.join(H1_TASKS)}]", "seeds=5",
                              *budget, "wandb.mode=offline", f"run_dir={train_run}", "progress=false"], 160,
             str(train_run / "summary.json")),
        # Last, so it is the one skipped when time runs short: what 5 vmapped seeds cost against one.
        bench_step(f"bench_h1_stand_{label}_1seed", H1_TASKS[0], base, out, 150, quick, "humanoidbench_h1", seeds=1),
    ]


# ------------------------------------------------------------------------------------------------ in subprocesses
def stack_payload() -> dict[str, Any]:
    """Python, package versions and jax's devices (run in a subprocess: it initialises jax's backends)."""
    import platform

    from envs.warp import installed_version  # jax-free: the versions are read before jax is imported

    versions = {name: installed_version(name) for name in STACK_PACKAGES}
    import jax

    devices = [{"id": d.id, "platform": d.platform, "kind": d.device_kind, "name": str(d)} for d in jax.devices()]
    return {"python": platform.python_version(), "executable": sys.executable, "host": platform.node(),
            "versions": versions, "jax_backend": jax.default_backend(), "devices": devices,
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def device_memory() -> list[dict[str, Any]]:
    """Each local device's allocator statistics (peak_bytes_in_use, ...), or None where the backend has none
    (CPU). Empty when the command never initialised jax (e.g. a config error)."""
    if "jax" not in sys.modules or sys.modules["jax"] is None:
        return []
    import jax

    return [{"device": str(d), "memory_stats": d.memory_stats()} for d in jax.local_devices()]


def run_cli_step(memory_file: str, argv: list[str]) -> int:
    """`purejaxsphere ARGV` in this process, then the devices' memory statistics into `memory_file`."""
    from purejaxsphere.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code if isinstance(stop.code, int) else 1
    Path(memory_file).write_text(json.dumps({"rc": code, "devices": device_memory()}, indent=2, default=str) + "\n")
    return code


# ------------------------------------------------------------------------------------------------ orchestration
def child_env() -> dict[str, str]:
    """The steps' environment: this repository first on the path, W&B offline (no network)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["WANDB_MODE"] = "offline"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def probe_stack(out: Path, timeout_s: float = 180) -> dict[str, Any]:
    """The stack, from a subprocess; written to OUT/stack.json."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--stack-json"], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"stack probe failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    stack = json.loads(proc.stdout.strip().splitlines()[-1])
    write_json(out / "stack.json", stack)
    return stack


def has_gpu(stack: dict[str, Any]) -> bool:
    return any(d["platform"] in GPU_PLATFORMS for d in stack["devices"])


def stack_lines(stack: dict[str, Any]) -> list[str]:
    """The stack as printed: one `name version` line each, then the devices."""
    versions = stack["versions"]
    lines = [f"python {stack['python']} ({stack['executable']})"]
    for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "mujoco", "mujoco-mjx", "mujoco-warp",
                 "warp-lang"):
        if name in ("jax-cuda12-plugin", "jax-cuda13-plugin", "warp-lang") and versions.get(name) is None:
            continue  # shown only where installed
        lines.append(f"{name} {versions.get(name) or 'not installed'}")
    devices = ", ".join(f"{d['name']} ({d['kind']})" for d in stack["devices"])
    lines.append(f"devices: {devices} (backend {stack['jax_backend']})")
    return lines


def last_line(path: Path, prefix: str) -> str | None:
    """The last line of a log that starts with `prefix` (the CLI's one-line errors), or None."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else None


def run_step(step: Step, out: Path, remaining_s: float) -> dict[str, Any]:
    """Run one step in a subprocess (or skip it when its limit does not fit `remaining_s`); its record."""
    record: dict[str, Any] = {"name": step.name, "command": "purejaxsphere " + " ".join(step.argv),
                              "limit_s": step.limit_s, "output": step.output}
    if step.limit_s > remaining_s:
        return {**record, "status": "skipped",
                "reason": f"does not fit: needs up to {step.limit_s:.0f} s, {remaining_s:.0f} s of the budget left"}
    log, memory = out / f"{step.name}.log", out / f"{step.name}.memory.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-step", str(memory), "--", *step.argv]
    started = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=step.limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the step's own process group (the CLI and C MuJoCo's threads)
            proc.wait()
            rc = None
    record.update(wall_s=round(time.perf_counter() - started, 1), rc=rc, log=str(log))
    config_error = last_line(log, "purejaxsphere: config error: ")
    if rc is None:  # a bench writes its JSON at the end: its log's last line says how far it got
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        record.update(status="timed_out", reason=f"stopped after its limit of {step.limit_s:.0f} s",
                      last_output=lines[-1] if lines else None)
    elif rc == 2 and config_error:  # refused before running: e.g. physics=warp on a stack without it
        record.update(status="skipped", reason=config_error.removeprefix("purejaxsphere: config error: "))
    else:
        record["status"] = "ok" if rc == 0 else "failed"
        if rc != 0:
            record["reason"] = f"exit code {rc}; see {log.name}"
    if memory.exists():
        record["device_memory"] = json.loads(memory.read_text())["devices"]
    record["figures"] = step_figures(step)
    return record


def peak_device_bytes(record: dict[str, Any]) -> int | None:
    """The largest `peak_bytes_in_use` over the step's devices, or None where not reported."""
    peaks = [(d.get("memory_stats") or {}).get("peak_bytes_in_use") for d in record.get("device_memory", [])]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def step_figures(step: Step) -> dict[str, Any]:
    """The headline figures of a finished step: a bench's rates (all seeds and per seed) and XLA's memory plan;
    a training run's final scores and its trainer rate from metrics.jsonl."""
    if not step.output or not Path(step.output).exists():
        return {}
    payload = json.loads(Path(step.output).read_text())
    if step.argv[0] == "bench":
        seeds = payload["setup"]["seeds"]
        rates = payload["rates"]
        return {"physics": payload["setup"]["physics"], "num_envs": payload["setup"]["num_envs"], "seeds": seeds,
                "rates": rates,
                "per_seed_rates": {k: (v / seeds if v is not None else None) for k, v in rates.items()
                                   if k not in ("brax_ppo", "mujoco_1thread")},
                "compile_seconds": payload["compile_seconds"],
                "xla_memory_plan_bytes": payload["memory"]["trainer_chunk_bytes"],
                "peak_rss_bytes": payload["memory"]["peak_rss_bytes"]}
    rows = [json.loads(line) for line in (Path(step.output).parent / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    rates = sorted(row["steps_per_s"] for row in rows if row.get("steps_per_s") is not None)  # all seeds' steps
    median = rates[len(rates) // 2] if rates else None
    seeds = len(payload["seeds"])
    return {"final_policy_average_return_mean": payload.get("final_policy_average_return_mean"),
            "final_policy_average_success_mean": payload.get("final_policy_average_success_mean"),
            "metrics_rows": len(rows), "seeds": seeds,
            "chunk_steps_per_s_median": median,
            "chunk_steps_per_s_per_seed_median": median / seeds if median else None,
            "compile_seconds": sorted({row["compile_seconds"] for row in rows if row.get("compile_seconds")})}


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def describe(record: dict[str, Any]) -> str:
    """One line per step: status, wall time, and the figure that matters (trainer rate, memory) or the reason."""
    text = f"{record['name']}: {record['status']}"
    if "wall_s" in record:
        text += f" ({record['wall_s']:.0f} s)"
    figures = record.get("figures") or {}
    if figures.get("rates"):
        trainer = figures["rates"].get("trainer")
        plan = figures.get("xla_memory_plan_bytes") or {}
        text += f"; trainer {trainer or 0:,.0f} env steps/s over {figures['seeds']} seeds"
        text += f", XLA plan of the chunk {plan['total'] / 2**20:,.1f} MiB" if plan else ""
    elif "metrics_rows" in figures:
        text += (f"; final average return {figures['final_policy_average_return_mean']:.2f}, chunks at "
                 f"{figures['chunk_steps_per_s_median'] or 0:,.0f} env steps/s over {figures['seeds']} seeds")
    peak = peak_device_bytes(record)
    if peak is not None:
        text += f", peak device memory {peak / 2**20:,.1f} MiB"
    if record.get("reason"):
        text += f"; {record['reason']}"
    return text


def check(out: Path, allow_cpu: bool, budget_s: float) -> int:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    stack = probe_stack(out)
    for line in stack_lines(stack):
        print(line, flush=True)
    gpu = has_gpu(stack)
    summary: dict[str, Any] = {"stack": stack, "gpu": gpu, "allow_cpu": allow_cpu, "budget_s": budget_s, "steps": []}
    if not gpu and not allow_cpu:
        print("no GPU device: stopping (--allow-cpu runs the steps at a tiny shape to test this script)", flush=True)
        summary["stopped"] = "no GPU device"
        write_json(out / "gpu_check.json", summary)
        return NO_GPU_EXIT
    if not gpu:
        print("no GPU device: --allow-cpu, so the steps run at a tiny shape on C MuJoCo physics", flush=True)
    for step in plan_steps(out, gpu):
        remaining = budget_s - (time.perf_counter() - started)
        print(f"{step.name}: purejaxsphere {' '.join(step.argv)}", flush=True)
        record = run_step(step, out, remaining)
        summary["steps"].append(record)
        print(f"  {describe(record)}", flush=True)
        write_json(out / "gpu_check.json", summary)  # after every step: a killed check keeps what it measured
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    write_json(out / "gpu_check.json", summary)
    print(f"done in {summary['wall_s']:.0f} s; wrote {out / 'gpu_check.json'}", flush=True)
    return 1 if any(r["status"] in ("failed", "timed_out") for r in summary["steps"]) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--stack-json"]:
        print(json.dumps(stack_payload(), default=str))
        return 0
    if argv[:1] == ["--run-step"]:  # --run-step MEMORY_FILE -- CLI ARGS
        return run_cli_step(argv[1], argv[3:])
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="gpu_check", help="output folder (default: ./gpu_check)")
    parser.add_argument("--allow-cpu", action="store_true", help="without a GPU, run the steps at a tiny shape")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help=f"wall-time budget of the whole check (default {BUDGET_S:.0f} s); a step whose limit "
                             "does not fit the time left is skipped")
    args = parser.parse_args(argv)
    return check(Path(os.path.abspath(args.out)), args.allow_cpu, args.budget_s)


if __name__ == "__main__":
    sys.exit(main())
