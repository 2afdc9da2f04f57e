"""Checkpoints, exact resume after SIGKILL and SIGTERM, corrupt-checkpoint fallback, numerical-fault handling."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY
from faults import inject_nan

from purejaxsphere import checkpoint as ckpt
from purejaxsphere import load_config
from purejaxsphere.cli import main
from purejaxsphere.logging import read_metrics

REPO = Path(__file__).resolve().parent.parent
# Two tasks of three chunks (two PPO updates each); small enough to compile in seconds on CPU.
TINY_RUN = [*TINY, "total_timesteps=192", "seeds=2", "progress=false", "wandb.mode=disabled"]
TIMING = ("steps_per_s", "chunk_seconds", "compile_seconds", "elapsed_seconds")


def final_leaves(run_dir: Path) -> list[np.ndarray]:
    import orbax.checkpoint as ocp

    last = ckpt.list_checkpoints(run_dir)[-1]
    assert last.name == "t001_c00003"
    stored = ocp.PyTreeCheckpointer().restore(last / "state")
    return [np.asarray(stored[key]) for key in sorted(stored)]


def metric_rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(run_dir)]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *TINY_RUN, f"run_dir={run_dir}"]) == 0
    return run_dir


def start_run(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "purejaxsphere.cli", "train", *TINY_RUN, f"run_dir={run_dir}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_checkpoint(run_dir: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not ckpt.list_checkpoints(run_dir):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def assert_same_run(run_dir: Path, reference: Path) -> None:
    for mine, theirs in zip(final_leaves(run_dir), final_leaves(reference), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # bit for bit
    assert metric_rows(run_dir) == metric_rows(reference)  # every chunk once, same numbers
    assert json.loads((run_dir / "eval_matrix.json").read_text()) == json.loads(
        (reference / "eval_matrix.json").read_text()
    )


def test_uninterrupted_run_keeps_last_n_and_task_finals(reference_run):
    names = [p.name for p in ckpt.list_checkpoints(reference_run)]
    # keep_last=3 plus the first task's final checkpoint
    assert names == ["t000_c00003", "t001_c00001", "t001_c00002", "t001_c00003"]
    assert all(ckpt.verify_checkpoint(p) is None for p in ckpt.list_checkpoints(reference_run))


def test_sigkill_mid_task_then_resume_equals_uninterrupted(reference_run, tmp_path):
    run_dir = tmp_path / "killed"
    process = start_run(run_dir)
    wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "summary.json").exists()
    assert main(["train", f"resume={run_dir}", "progress=false"]) == 0
    assert_same_run(run_dir, reference_run)


def start_api_run(run_dir: Path) -> subprocess.Popen:
    """`run(cfg)` of the Python API, no CLI, in a child process."""
    code = ("import sys; from purejaxsphere import load_config; from purejaxsphere.run import run; "
            "run(load_config(*sys.argv[1:]))")
    return subprocess.Popen([sys.executable, "-c", code, *TINY_RUN, f"run_dir={run_dir}"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_python_api_sigkill_then_resume_equals_uninterrupted(reference_run, tmp_path):
    """The Python API is the CLI's code path: `run(cfg)` killed after its first checkpoint, then `run(cfg)` with
    resume=RUN_DIR, ends bit for bit where the uninterrupted `purejaxsphere train` run ended."""
    from purejaxsphere.logging import json_ready
    from purejaxsphere.run import run

    run_dir = tmp_path / "api"
    process = start_api_run(run_dir)
    wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "summary.json").exists()
    result = run(load_config(f"resume={run_dir}", "progress=false"))
    assert not result.interrupted and result.position == ckpt.Position(1, 3)
    assert_same_run(run_dir, reference_run)
    final = [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(result.state)) if np.size(leaf) > 0]
    for mine, theirs in zip(final, final_leaves(reference_run), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # the returned carry is the checkpointed one
    resumed = [json_ready({k: v for k, v in row.items() if k not in TIMING}) for row in result.metrics]
    assert resumed and resumed == metric_rows(reference_run)[-len(resumed):]  # the rows this call trained


def test_sigterm_checkpoints_then_resume_equals_uninterrupted(reference_run, tmp_path):
    run_dir = tmp_path / "terminated"
    process = start_run(run_dir)
    wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert f"resume with: purejaxsphere train resume={run_dir}" in stderr
    assert not (run_dir / "summary.json").exists()
    assert main(["train", f"resume={run_dir}", "progress=false"]) == 0
    assert_same_run(run_dir, reference_run)


def test_resuming_a_finished_run_is_a_no_op(reference_run, capsys):
    before = (reference_run / "metrics.jsonl").read_bytes()
    assert main(["train", f"resume={reference_run}"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert (reference_run / "metrics.jsonl").read_bytes() == before


def test_truncated_checkpoint_falls_back_to_the_previous_one(reference_run, tmp_path):
    run_dir = tmp_path / "corrupt"
    shutil.copytree(reference_run, run_dir)
    (run_dir / "summary.json").unlink()  # as if killed right after the last checkpoint
    newest = ckpt.list_checkpoints(run_dir)[-1]
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    messages = []
    assert ckpt.latest_good_checkpoint(run_dir, warn=messages.append).name == "t001_c00002"
    assert "t001_c00003 is corrupt (checksum mismatch" in messages[0]
    # The resumed run redoes the last chunk from the good checkpoint and ends where the reference ended.
    shutil.rmtree(newest)
    assert main(["train", f"resume={run_dir}", "progress=false"]) == 0
    assert_same_run(run_dir, reference_run)


def test_checkpoint_of_another_configuration_is_refused(reference_run):
    from purejaxsphere import load_config, make_train

    other = make_train(load_config(*[o for o in TINY_RUN if not o.startswith("seeds")], "seeds=3"))
    with pytest.raises(ValueError, match="different configuration"):
        ckpt.load_checkpoint(ckpt.list_checkpoints(reference_run)[-1], other.initial_state())


def test_interrupted_save_leaves_previous_checkpoints_intact(reference_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "diskfull"
    shutil.copytree(reference_run, run_dir)
    before = {p.name for p in ckpt.list_checkpoints(run_dir)}
    good = ckpt.load_checkpoint(ckpt.list_checkpoints(run_dir)[-1], final_state_template(reference_run))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "atomic_write_text", disk_full)
    good.position = ckpt.Position(1, 4)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(run_dir, good)
    assert {p.name for p in ckpt.list_checkpoints(run_dir)} == before
    assert not list((run_dir / ckpt.CHECKPOINTS).glob(".tmp-*"))
    assert all(ckpt.verify_checkpoint(p) is None for p in ckpt.list_checkpoints(run_dir))


def final_state_template(run_dir: Path):
    """The structure of a checkpoint of the second task (each task's env state is its own pytree)."""
    from purejaxsphere import load_config, make_train

    return make_train(load_config(*TINY_RUN)).start_task(1, None)


def test_injected_nan_is_reported_and_other_seeds_match_a_clean_run(reference_run, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "nan"
    inject_nan(monkeypatch, load_config(*TINY_RUN), seed=1, task_index=0, chunk=1)
    code = main(["train", *TINY_RUN, f"run_dir={run_dir}", "fault.on_nan=drop_seed"])
    assert code == 0
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "in seed 1, task brax/reacher (index 0), chunk 1" in err
    rows = metric_rows(run_dir)
    clean = [row for row in metric_rows(reference_run) if row["seed"] == 0]
    assert [row for row in rows if row["seed"] == 0] == clean
    assert [(row["task_index"], row["chunk"]) for row in rows if row["seed"] == 1] == [(0, 0)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dropped_seeds"] == [1]
    assert summary["average_return"][1] is None and summary["final_policy_average_return"][1] is None
    reference_summary = json.loads((reference_run / "summary.json").read_text())
    for key in ("average_return", "final_policy_average_return"):
        assert summary[key][0] == reference_summary[key][0]
    assert summary["average_return_mean"] == summary["average_return"][0]  # the dropped seed is left out


def test_injected_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "nan_stop"
    inject_nan(monkeypatch, load_config(*TINY_RUN), seed=0, task_index=0, chunk=1)
    code = main(["train", *TINY_RUN, f"run_dir={run_dir}"])
    assert code == 3
    err = capsys.readouterr().err
    assert "numerical fault: non-finite loss" in err and "seed 0, task brax/reacher (index 0), chunk 1" in err
    assert "last good checkpoint t000_c00001" in err
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == ["t000_c00001"]
    assert jax.tree.leaves(read_metrics(run_dir))  # the good chunk's rows are on disk


def test_out_of_memory_gives_a_message_suggesting_smaller_batches(tmp_path, monkeypatch, capsys):
    from purejaxsphere import driver

    def exhausted(self, task_index, state):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 12.00GiB")

    monkeypatch.setattr(driver.Trainer, "compiled_chunk", exhausted)
    assert main(["train", *TINY_RUN, f"run_dir={tmp_path / 'oom'}"]) == 4
    err = capsys.readouterr().err
    assert "out of memory with num_envs=4 x 2 seeds" in err and "num_envs=2" in err
