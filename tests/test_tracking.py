"""W&B (offline by default, never blocking) and TensorBoard trackers on a tiny real run."""

import json
import re

import pytest
from conftest import TINY

from purejaxsphere.cli import main
from purejaxsphere.tracking import scalar_items, wandb_run_id

ONE_TASK = [*TINY, "tasks=[brax/reacher]", "total_timesteps=64", "seeds=2", "progress=false",
            "checkpoint.enabled=false"]


def wandb_summary_value(log: bytes, key: str):
    """The last value W&B recorded for a summary key in an offline run's .wandb log. wandb 0.31 has no Python reader
    for these logs, so match the protobuf SummaryItem: field 1 the key (tag 0x0a, length), field 16 value_json
    (tag 0x82 0x01, length); the length prefix makes the key match exactly (not as a suffix of a longer key)."""
    name = key.encode()
    matches = list(re.finditer(b"\n" + bytes([len(name)]) + re.escape(name) + b"\x82\x01(.)", log, re.DOTALL))
    assert matches, f"{key} not in the W&B log"
    end = matches[-1].end()
    return json.loads(log[end:end + matches[-1].group(1)[0]])


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
    # Each seed's W&B run summary holds its own summary.json scores (the paper's metric first).
    summary = json.loads((run_dir / "summary.json").read_text())
    for path in offline:
        log = next(path.glob("*.wandb")).read_bytes()
        seed = int(path.name.rsplit("-s", 1)[1])
        for key in ("average_return", "final_policy_average_return", "forgetting_return"):
            assert wandb_summary_value(log, key) == pytest.approx(summary[key][seed])
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
