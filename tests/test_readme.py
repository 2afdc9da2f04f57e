"""The README's Quick start, run the way a new user runs it: its commands are read out of README.md (never copied
here), run as subprocesses of the installed `purejaxsphere` entry point in a fresh, empty working directory, with
the default relative run directory (`runs/<time>_...`). Then, with relative paths: `eval`, `report`, resuming the
finished run, and a run killed with SIGKILL after its first chunk and resumed.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from purejaxsphere import load_config
from purejaxsphere.programs import plan_task

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TIMEOUT = 1200


def quick_start_section(text: str) -> str:
    return text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]


def quick_start_block(text: str) -> list[list[str]]:
    """The commands of the first ```bash block under '## Quick start', split as the shell splits them (comments
    dropped)."""
    block = re.search(r"```bash\n(.*?)```", quick_start_section(text), re.S)
    assert block, "README.md: no ```bash block under '## Quick start'"
    return [words for words in (shlex.split(line, comments=True) for line in block.group(1).splitlines()) if words]


def lint_command(text: str) -> list[str]:
    """The Quick start's `Lint: `...`` command, split as the shell splits it."""
    lint = re.search(r"Lint: `([^`]+)`", quick_start_section(text))
    assert lint, "README.md: no 'Lint: `...`' under '## Quick start'"
    return shlex.split(lint.group(1))


def ci_commands() -> list[list[str]]:
    """.ci/run's python and ruff lines, in order, split as the shell splits them."""
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [shlex.split(line) for line in lines if line.startswith(("python", "ruff"))]


COMMANDS = quick_start_block(README.read_text())
ENTRY_POINT = shutil.which("purejaxsphere")


def user_environment() -> dict[str, str]:
    """The test session's environment less what conftest sets for in-process tests (a user has neither the XLA:CPU
    flag, which the CLI sets itself where it is needed, nor W&B disabled); the test run's compilation cache stays."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "WANDB_MODE")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(words, cwd=cwd, env=user_environment(), capture_output=True, text=True, timeout=TIMEOUT)


def test_quick_start_is_install_main_job_and_the_ci_test_command():
    kinds = [words[:2] for words in COMMANDS]
    assert kinds == [["pip", "install"], ["purejaxsphere", "train"], ["python", "-m"]], COMMANDS
    assert COMMANDS[0] == ["pip", "install", "-e", ".[dev]"]
    ci = ci_commands()
    install, tests = ["python", "-m", *COMMANDS[0]], COMMANDS[2]
    assert any(line[:len(install)] == install for line in ci)  # CI installs as the README says ...
    assert tests in ci  # ... and runs exactly the README's test command


def test_ci_lints_as_the_readme_says_after_the_install_and_before_the_tests():
    ci, lint = ci_commands(), lint_command(README.read_text())
    install, tests = ["python", "-m", *COMMANDS[0]], COMMANDS[2]
    position = {name: next((i for i, line in enumerate(ci) if line[:len(words)] == words), None)
                for name, words in (("install", install), ("lint", lint), ("tests", tests))}
    assert None not in position.values(), (position, ci)
    assert position["install"] < position["lint"] < position["tests"], position
    assert ci[position["lint"]][len(lint):len(lint) + 1] == ["||"], ci[position["lint"]]  # a finding fails CI


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The Quick start's main job, exactly as written, in a new empty directory."""
    assert ENTRY_POINT, "the `purejaxsphere` entry point is not installed (pip install -e \".[dev]\")"
    cwd = tmp_path_factory.mktemp("new_user")
    job = next(words for words in COMMANDS if words[0] == "purejaxsphere")
    proc = run(job, cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = list((cwd / "runs").iterdir())
    assert len(runs) == 1, runs
    return cwd, runs[0].relative_to(cwd), proc, job


def expected_rows(job: list[str]) -> int:
    cfg = load_config(*job[2:])
    return len(cfg.tasks) * plan_task(cfg).n_chunks * len(range(cfg.seeds) if isinstance(cfg.seeds, int) else cfg.seeds)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_main_job_trains_checkpoints_and_writes_its_run_directory(main_job):
    cwd, run_dir, proc, job = main_job
    assert run_dir.parts[0] == "runs" and len(run_dir.parts) == 2  # the default, relative run directory
    assert f"run dir {run_dir}" in proc.stdout  # shown as it will be typed, relative
    assert str(cwd) not in proc.stdout  # ... never as the absolute path the code uses
    # The end of the run says what happened and what to run next.
    assert "purejaxsphere: done:" in proc.stdout and "(paper metric" in proc.stdout
    for line in (f"run directory: {run_dir}", f"purejaxsphere report {run_dir}", f"purejaxsphere eval {run_dir}"):
        assert line in proc.stdout, line
    full = cwd / run_dir
    for name in ("config.yaml", "metrics.jsonl", "eval_matrix.json", "summary.json"):
        assert (full / name).is_file(), name
    cfg = load_config(*job[2:])
    plan = plan_task(cfg)
    finals = [f"t{t:03d}_c{plan.n_chunks:05d}" for t in range(len(cfg.tasks))]
    assert all((full / "checkpoints" / name / "manifest.json").is_file() for name in finals), finals
    rows = metrics(full)
    assert len(rows) == expected_rows(job)
    assert max(row["env_steps"] for row in rows) == plan.total_steps  # the budget, not more
    assert list((full / "wandb").glob("offline-run-*")), "W&B offline runs (the default) are missing"
    summary = json.loads((full / "summary.json").read_text())
    assert summary["seeds"] == list(range(cfg.seeds))


def test_eval_with_a_relative_run_directory(main_job):
    cwd, run_dir, _, _ = main_job
    proc = run(["purejaxsphere", "eval", str(run_dir)], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"evaluation of {run_dir} " in proc.stdout and f"wrote {run_dir}/eval_mjx.json" in proc.stdout
    evaluation = json.loads((cwd / run_dir / "eval_mjx.json").read_text())
    matrix = json.loads((cwd / run_dir / "eval_matrix.json").read_text())
    # The final checkpoint on the training physics reproduces the evaluation matrix's last row.
    assert evaluation["return"] == matrix["return"][-1]


def test_report_with_a_relative_run_directory(main_job):
    cwd, run_dir, _, _ = main_job
    proc = run(["purejaxsphere", "report", str(run_dir)], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote" in proc.stdout and "to report:" in proc.stdout
    for name in ("summary.md", "summary.csv", "curves.png", "eval_matrix.png"):
        assert (cwd / "report" / name).stat().st_size > 0, name


def test_resuming_the_finished_run_does_nothing(main_job):
    cwd, run_dir, _, _ = main_job
    before = (cwd / run_dir / "metrics.jsonl").read_text()
    proc = run(["purejaxsphere", "train", f"resume={run_dir}"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{run_dir} already finished; nothing to resume" in proc.stdout
    assert (cwd / run_dir / "metrics.jsonl").read_text() == before


def test_killed_main_job_resumes_from_a_relative_path_to_the_same_result(main_job, tmp_path):
    cwd, finished_dir, _, job = main_job
    log = tmp_path.parent / f"{tmp_path.name}.log"  # a file, not a pipe nobody reads while waiting
    with open(log, "w") as out:
        process = subprocess.Popen(job, cwd=tmp_path, env=user_environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list(tmp_path.glob("runs/*/checkpoints/t000_c00001/manifest.json")):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no first checkpoint"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    run_dir = next((tmp_path / "runs").iterdir()).relative_to(tmp_path)
    assert not (tmp_path / run_dir / "summary.json").exists()
    proc = run(["purejaxsphere", "train", f"resume={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from checkpoint t00" in proc.stderr
    rows = metrics(tmp_path / run_dir)
    keys = [(row["task_index"], row["chunk"], row["seed"]) for row in rows]
    assert len(keys) == len(set(keys)) == expected_rows(job)  # every chunk once
    # Killed and resumed, the run ends where the uninterrupted main job ended (CPU: bit for bit).
    resumed = json.loads((tmp_path / run_dir / "eval_matrix.json").read_text())
    uninterrupted = json.loads((cwd / finished_dir / "eval_matrix.json").read_text())
    assert resumed["return"] == uninterrupted["return"]
