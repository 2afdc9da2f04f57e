"""W&B (offline by default, never blocking) and TensorBoard trackers on a tiny real run."""

import json

import pytest

from purejaxsphere.cli import main
from purejaxsphere.tracking import scalar_items, wandb_run_id

ONE_TASK = [
    "tasks=[brax/reacher]", "num_envs=4", "ppo.n_steps=8", "ppo.minibatch_size=16", "ppo.update_epochs=2",
    "network.hidden_sizes=[16,16]", "network.gate_hidden_sizes=[16]", "network.critic_hidden_sizes=[16]",
    "network.n_experts=3", "eval.interval=64", "eval.episodes=2", "episode_length=20", "total_timesteps=64",
    "seeds=2", "progress=false", "checkpoint.enabled=false", "diagnostics.enabled=false",
]


def test_scalar_items_keeps_finite_numbers_only():
    row = {"task": "brax/reacher", "seed": 1, "eval_return": 2.5, "train_success": None, "x": float("nan"),
           "flag": True}
    assert scalar_items(row) == {"seed": 1.0, "eval_return": 2.5}


def test_run_ids_are_stable_per_directory_and_seed(tmp_path):
    assert wandb_run_id(tmp_path / "a", 0) == wandb_run_id(tmp_path / "a", 0)
    assert len({wandb_run_id(tmp_path / "a", 0), wandb_run_id(tmp_path / "a", 1), wandb_run_id(tmp_path / "b", 0)}) == 3


def test_default_offline_wandb_and_tensorboard_write_their_files(tmp_path, monkeypatch):
    # WANDB_MODE unset and no network (this sandbox and CI have none): the default offline mode still finishes.
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    assert main(["train", *ONE_TASK, f"run_dir={run_dir}", "tensorboard=true"]) == 0
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2  # one W&B run per seed
    assert all(list(path.glob("*.wandb")) for path in offline)  # the run's event log
    attached = {p.name for path in offline for p in (path / "files").iterdir()}
    assert {"eval_matrix.json", "summary.json", "config.yaml"} <= attached
    for seed in (0, 1):
        events = list((run_dir / "tensorboard" / f"seed_{seed}").glob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 0
    assert json.loads((run_dir / "summary.json").read_text())["seeds"] == [0, 1]


def test_online_without_login_falls_back_to_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    run_dir = tmp_path / "run"
    assert main(["train", *ONE_TASK, f"run_dir={run_dir}", "wandb.mode=online"]) == 0
    err = capsys.readouterr().err
    if "logging offline instead" not in err:
        pytest.fail(f"expected the offline fallback message, got: {err[-2000:]}")
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
