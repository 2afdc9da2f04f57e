"""scripts/gpu_check.sh on a CPU machine: it prints the stack, stops where it needs a GPU (exit 3) and writes the
stack as JSON; with --allow-cpu (slow) it runs every step at a tiny shape and records each one."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def run_script(out: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(out.parent)}
    return subprocess.run(["bash", str(SCRIPT), str(out), *args], cwd=out.parent, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_without_a_gpu_it_prints_the_stack_and_stops(tmp_path):
    proc = run_script(tmp_path / "check", timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("jax", "jaxlib", "mujoco", "mujoco-mjx"):
        assert f"{name} {metadata.version(name)}" in lines, (name, lines)
    assert lines[0].startswith(f"python {platform.python_version()} ")
    assert any(line.startswith("devices: ") and "cpu" in line for line in lines)
    assert lines[-1].startswith("no GPU device: stopping")
    stack = json.loads((tmp_path / "check" / "stack.json").read_text())
    assert stack["versions"]["mujoco-mjx"] == metadata.version("mujoco-mjx")
    assert stack["python"] == platform.python_version()
    assert {d["platform"] for d in stack["devices"]} == {"cpu"}
    summary = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert summary["gpu"] is False and summary["stopped"] == "no GPU device" and summary["steps"] == []


def test_a_step_that_does_not_fit_is_skipped(tmp_path):
    """The budget rule alone (no subprocess runs): a limit above the time left is skipped, saying so."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_check

    step = gpu_check.plan_steps(tmp_path, gpu=True)[0]
    record = gpu_check.run_step(step, tmp_path, remaining_s=step.limit_s - 1)
    assert record["status"] == "skipped" and record["reason"].startswith("does not fit: needs up to 200 s")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_allow_cpu_runs_every_step_at_a_tiny_shape(tmp_path):
    out = tmp_path / "check"
    proc = run_script(out, "--allow-cpu", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "gpu_check.json").read_text())
    steps = {record["name"]: record for record in summary["steps"]}
    assert list(steps) == ["bench_h1_stand_cpu", "bench_h1_stand_warp", "bench_hammer-v3_cpu", "bench_hammer-v3_warp",
                           "train_crl_h1", "bench_h1_stand_cpu_1seed"]
    for name in ("bench_h1_stand_warp", "bench_hammer-v3_warp"):  # refused by config validation on this stack
        assert steps[name]["status"] == "skipped"
        assert "physics: 'warp' needs mujoco-mjx >= 3.3.5" in steps[name]["reason"]
    for name, seeds in (("bench_h1_stand_cpu", 5), ("bench_hammer-v3_cpu", 5), ("bench_h1_stand_cpu_1seed", 1)):
        bench = json.loads(Path(steps[name]["output"]).read_text())
        figures = steps[name]["figures"]
        assert steps[name]["status"] == "ok" and bench["setup"]["seeds"] == seeds == figures["seeds"]
        assert figures["rates"]["trainer"] == bench["rates"]["trainer"] > 0
        assert figures["per_seed_rates"]["trainer"] == pytest.approx(bench["rates"]["trainer"] / seeds)
        assert figures["xla_memory_plan_bytes"]["total"] > 0
        assert steps[name]["device_memory"] and steps[name]["device_memory"][0]["memory_stats"] is None  # CPU
    train = steps["train_crl_h1"]
    assert train["status"] == "ok", train
    run_summary = json.loads((out / "train_run" / "summary.json").read_text())
    assert run_summary["seeds"] == [0, 1, 2, 3, 4]
    assert train["figures"]["final_policy_average_return_mean"] == run_summary["final_policy_average_return_mean"]
    assert train["figures"]["metrics_rows"] == 2 * 2 * 5  # 2 tasks x 2 chunks x 5 seeds
    assert list((out / "train_run" / "wandb").glob("offline-run-*"))
