"""`purejaxsphere report` on two tiny real runs (moe_topk vs moe_topk_sphere) and on hand-made run directories."""

import csv
import json
import shutil
import struct

import numpy as np
import pytest
import yaml

from purejaxsphere.cli import main
from test_train import TINY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ["brax/reacher", "brax/inverted_double_pendulum"]


def png_size(path):
    """(width, height) from the PNG header, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def assert_image(path, size):
    assert png_size(path) == size
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.01  # something is drawn


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    # Only the SPHERE run logs spectral diagnostics, so the rank and routing plots show that run alone.
    for algo, diagnostics in (("moe_topk", "false"), ("moe_topk_sphere", "true")):
        dirs[algo] = root / algo
        code = main(["train", *TINY, f"algo={algo}", f"tasks=[{','.join(TASKS)}]", "seeds=2", "total_timesteps=128",
                     f"run_dir={dirs[algo]}", "progress=false", f"diagnostics.enabled={diagnostics}"])
        assert code == 0
    return dirs


def test_report_tables_and_plots_of_two_algorithms(two_runs, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(two_runs["moe_topk"]), str(two_runs["moe_topk_sphere"]), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"summary.md", "summary.csv", "per_seed.csv", "per_task.csv",
                                              "curves.png", "eval_matrix.png", "ranks.png", "routing_load.png"}
    summary = read_csv(out / "summary.csv")
    assert [row["algorithm"] for row in summary] == ["moe_topk", "moe_topk_sphere"]
    assert all(row["n_seeds"] == "2" and row["seeds"] == "0;1" for row in summary)
    per_seed = read_csv(out / "per_seed.csv")
    assert [(r["algorithm"], r["seed"]) for r in per_seed] == [
        ("moe_topk", "0"), ("moe_topk", "1"), ("moe_topk_sphere", "0"), ("moe_topk_sphere", "1")]
    for row in per_seed:
        # The trainer's own summary.json agrees on the final average return; Brax tasks have no success.
        trainer_summary = json.loads((two_runs[row["algorithm"]] / "summary.json").read_text())
        expected = trainer_summary["final_average_return"][int(row["seed"])]
        assert float(row["final_return"]) == pytest.approx(expected, rel=1e-9)
        assert row["final_success"] == "" and row["auc_success"] == ""
        assert np.isfinite(float(row["forgetting_return"])) and np.isfinite(float(row["auc_return"]))
    for row in summary:
        values = [float(r["final_return"]) for r in per_seed if r["algorithm"] == row["algorithm"]]
        assert float(row["final_return_mean"]) == pytest.approx(np.mean(values))
        assert float(row["final_return_std"]) == pytest.approx(np.std(values, ddof=1))
        assert float(row["final_return_ci_low"]) <= np.mean(values) <= float(row["final_return_ci_high"])
    per_task = read_csv(out / "per_task.csv")
    assert [(r["algorithm"], r["task"]) for r in per_task] == [(a, t) for a in ("moe_topk", "moe_topk_sphere")
                                                               for t in TASKS]
    markdown = (out / "summary.md").read_text()
    for algo in ("moe_topk", "moe_topk_sphere"):
        assert f"| {algo} | 0, 1 |" in markdown  # main table: algorithm and its seeds
        for seed in (0, 1):
            assert f"| {algo} | {algo} | {seed} |" in markdown  # per-seed table: algorithm, run, seed
    assert "final avg. success" in markdown and "n/a" in markdown
    assert_image(out / "curves.png", (1200, 450))
    assert_image(out / "eval_matrix.png", (900, 400))  # 2 algorithms x return only
    assert_image(out / "ranks.png", (1500, 450))
    assert_image(out / "routing_load.png", (450, 400))  # one panel: only the SPHERE run logged routing loads


def test_no_rank_or_routing_plots_without_diagnostics(two_runs, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(two_runs["moe_topk"]), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"summary.md", "summary.csv", "per_seed.csv", "per_task.csv",
                                              "curves.png", "eval_matrix.png"}


def test_rank_and_routing_plots_from_logged_diagnostics(two_runs, tmp_path):
    run = tmp_path / "with_diagnostics"
    shutil.copytree(two_runs["moe_topk_sphere"], run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):  # diagnostics keys as spectral_diagnostics names them (3 experts in TINY)
        row.update(entk_rank=20.0 - i, gram_rank=8.0 - 0.3 * i, routing_load_e0=0.5, routing_load_e1=0.3,
                   routing_load_e2=0.2)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "report"
    assert main(["report", str(two_runs["moe_topk"]), f"sphere={run}", "--out", str(out)]) == 0
    assert_image(out / "ranks.png", (1500, 450))
    assert_image(out / "routing_load.png", (450, 400))  # only the run that logged loads
    assert [r["algorithm"] for r in read_csv(out / "summary.csv")] == ["moe_topk", "sphere"]


def write_run(path, algo, protocol, success_rows, matrix):
    """A hand-made run directory over tasks a, b with 2 seeds; success_rows: {task_index: [C, S] per 100 steps}."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"algo": algo, "protocol": protocol, "tasks": ["a", "b"]}))
    lines = []
    for index, values in success_rows.items():
        for c, per_seed in enumerate(values):
            for s, value in enumerate(per_seed):
                lines.append({"task": "ab"[index], "task_index": index, "chunk": c, "seed": s, "env_steps": 100 * (c + 1),
                              "total_env_steps": 200 * index + 100 * (c + 1), "eval_success": value,
                              "eval_return": 10.0 * value})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    success = np.asarray(matrix, dtype=float)
    payload = {"tasks": ["a", "b"], "seeds": [0, 1], "success": np.where(np.isnan(success), None, success).tolist(),
               "return": np.where(np.isnan(success), None, 10 * success).tolist()}
    (path / "eval_matrix.json").write_text(json.dumps(payload))


def test_forward_transfer_against_rl_reference_hand_computed(tmp_path):
    nan = float("nan")
    # CRL run: task AUCs (mean of two equal chunks) a: seed0 0.5, seed1 0.25; b: seed0 0.75, seed1 0.5.
    write_run(tmp_path / "crl", "moe_topk_sphere", "crl",
              {0: [[0.4, 0.0], [0.6, 0.5]], 1: [[0.5, 0.5], [1.0, 0.5]]},
              [[[0.6, 0.5], [nan, nan]], [[0.2, 0.5], [1.0, 0.5]]])
    # Reference: AUC^b a = 0.5 (seeds 0.5, 0.5), b = 0.0
    write_run(tmp_path / "ref", "moe_topk_sphere", "rl",
              {0: [[0.5, 0.0], [0.5, 1.0]], 1: [[0.0, 0.0], [0.0, 0.0]]},
              [[[0.5, 1.0], [nan, nan]], [[0.5, 1.0], [0.0, 0.0]]])
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "crl"), "--reference", str(tmp_path / "ref"), "--out", str(out)]) == 0
    per_seed = {r["seed"]: r for r in read_csv(out / "per_seed.csv")}
    # FT_a = (AUC_a - 0.5) / 0.5 = (0, -0.5); FT_b = AUC_b = (0.75, 0.5); average (0.375, 0)
    assert float(per_seed["0"]["forward_transfer"]) == pytest.approx(0.375)
    assert float(per_seed["1"]["forward_transfer"]) == pytest.approx(0.0)
    # final success (0.6, 0.5); forgetting ((0.6-0.2)+0)/2 = 0.2 and 0; sequence AUC (0.625, 0.375)
    assert float(per_seed["0"]["final_success"]) == pytest.approx(0.6)
    assert float(per_seed["0"]["forgetting_success"]) == pytest.approx(0.2)
    assert float(per_seed["1"]["forgetting_success"]) == pytest.approx(0.0)
    assert float(per_seed["0"]["auc_success"]) == pytest.approx(0.625)
    assert float(per_seed["1"]["auc_success"]) == pytest.approx(0.375)
    assert "forward transfer (success)" in (out / "summary.md").read_text()
    assert_image(out / "eval_matrix.png", (450, 800))  # success and return rows
    # A CRL run is no single-task reference.
    assert main(["report", str(tmp_path / "crl"), "--reference", str(tmp_path / "crl"), "--out", str(out)]) == 2


def test_report_rejects_a_directory_that_is_not_a_run(tmp_path):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
