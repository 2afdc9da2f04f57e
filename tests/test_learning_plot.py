"""scripts/learning_plot.py reads the official trainer's JSON (built here from the smoke run's real logs,
tests/data/official_sphere/) and our run directories into one table whose figures equal numpy's over the inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import learning_plot  # noqa: E402
import official_sphere  # noqa: E402

DATA = REPO / "tests" / "data" / "official_sphere"


def official_record(seed: int, shift: float) -> dict:
    """An official_sphere.py `run` JSON from the smoke logs, its returns shifted to tell seeds apart."""
    result = official_sphere.parse_run(DATA, (DATA / "stdout.log").read_text())
    for e in result["evals"]:
        e["return"] += shift
    return result | {"trainer": learning_plot.OFFICIAL, "task": "h1_stand", "seed": seed, "wall_seconds": 100.0}


def write_run_dir(path: Path, returns: dict[tuple[int, int], float]) -> Path:
    """A one-task run directory: config.yaml and metrics.jsonl eval rows (plus a row without evaluation)."""
    path.mkdir()
    (path / "config.yaml").write_text("algo: moe_topk_sphere_gradscale\n")
    rows = [{"task": "humanoidbench/h1_stand", "seed": seed, "env_steps": steps, "eval_return": ret,
             "eval_success": float(ret > 50), "elapsed_seconds": 10.0 * steps}
            for (steps, seed), ret in returns.items()]
    rows.append({"task": "humanoidbench/h1_stand", "seed": 0, "env_steps": 1, "train_return": 3.0})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_official_seeds_stack_and_run_dirs_read_every_seed(tmp_path):
    for seed, shift in ((0, 0.0), (1, 10.0)):
        (tmp_path / f"official_{seed}.json").write_text(json.dumps(official_record(seed, shift)))
    returns = {(100, 0): 40.0, (100, 1): 60.0, (200, 0): 70.0, (200, 1): 30.0}
    run_dir = write_run_dir(tmp_path / "ours", returns)
    entries = learning_plot.curves([tmp_path / "official_0.json", run_dir, tmp_path / "official_1.json"])
    assert [label for label, _ in entries] == ["ours moe_topk_sphere_gradscale", "official SPHERE"]
    ours, official = entries[0][1], entries[1][1]
    assert ours["steps"] == [100, 200] and ours["eval_return"] == [[40.0, 60.0], [70.0, 30.0]]
    assert ours["wall_seconds"] == 2000.0
    smoke = [e["return"] for e in official_sphere.parse_run(DATA, (DATA / "stdout.log").read_text())["evals"]]
    np.testing.assert_allclose(np.asarray(official["eval_return"]), np.stack([smoke, np.add(smoke, 10)], 1))
    assert official["task"] == "humanoidbench/h1_stand" and official["wall_seconds"] == 200.0

    rows = learning_plot.table(entries).splitlines()
    assert "final success" in rows[0]
    final, late = np.array([70.0, 30.0]), np.array([55.0, 45.0])  # seed means of the (only two) evaluations
    assert rows[2] == (f"| humanoidbench/h1_stand | ours moe_topk_sphere_gradscale | 200 | {final.mean():.1f} ± "
                       f"{final.std():.1f} | {late.mean():.1f} ± {late.std():.1f} | 0.50 ± 0.50 | 2 | 2000 s |")
    last = np.array([smoke[-1], smoke[-1] + 10])
    assert f"| {last.mean():.1f} ± {last.std():.1f} |" in rows[3]


def test_inputs_that_do_not_stack_are_refused(tmp_path):
    partial = write_run_dir(tmp_path / "partial", {(100, 0): 1.0, (100, 1): 2.0, (200, 0): 3.0})
    with pytest.raises(ValueError, match="no eval row"):
        learning_plot.curves([partial])
    record = official_record(1, 0.0)
    record["evals"] = record["evals"][:1]
    (tmp_path / "a.json").write_text(json.dumps(official_record(0, 0.0)))
    (tmp_path / "b.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="different steps"):
        learning_plot.curves([tmp_path / "a.json", tmp_path / "b.json"])


def test_brax_tables_keep_their_columns():
    entries = learning_plot.curves([REPO / "docs" / "learning" / "brax_inverted_pendulum_ppo.json"])
    assert "success" not in learning_plot.table(entries).splitlines()[0]
