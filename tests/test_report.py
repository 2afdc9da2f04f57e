"""`purejaxsphere report` on two tiny real runs (moe_topk vs moe_topk_sphere) and on hand-made run directories."""

import csv
import json
import shutil
import struct

import numpy as np
import pytest
import yaml
from conftest import TINY

from purejaxsphere.cli import main

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
    assert {p.name for p in out.iterdir()} == {"summary.md", "summary.csv", "significance.csv", "per_seed.csv",
                                              "per_task.csv", "curves.png", "eval_matrix.png", "ranks.png",
                                              "routing_load.png"}
    summary = read_csv(out / "summary.csv")
    assert [row["algorithm"] for row in summary] == ["moe_topk", "moe_topk_sphere"]
    assert all(row["n_seeds"] == "2" and row["seeds"] == "0;1" for row in summary)
    per_seed = read_csv(out / "per_seed.csv")
    assert [(r["algorithm"], r["seed"]) for r in per_seed] == [
        ("moe_topk", "0"), ("moe_topk", "1"), ("moe_topk_sphere", "0"), ("moe_topk_sphere", "1")]
    for row in per_seed:
        # The trainer's own summary.json agrees on both averages; Brax tasks have no success.
        trainer_summary = json.loads((two_runs[row["algorithm"]] / "summary.json").read_text())
        for key in ("average_return", "final_policy_average_return", "forgetting_return"):
            assert float(row[key]) == pytest.approx(trainer_summary[key][int(row["seed"])], rel=1e-9)
        assert "average_success" not in trainer_summary
        assert row["average_success"] == row["final_policy_average_success"] == row["auc_success"] == ""
        assert np.isfinite(float(row["forgetting_return"])) and np.isfinite(float(row["auc_return"]))
    for row in summary:
        values = [float(r["average_return"]) for r in per_seed if r["algorithm"] == row["algorithm"]]
        assert float(row["average_return_mean"]) == pytest.approx(np.mean(values))
        assert float(row["average_return_std"]) == pytest.approx(np.std(values, ddof=1))
        assert float(row["average_return_ci_low"]) <= np.mean(values) <= float(row["average_return_ci_high"])
    # Significance on the headline return (no success on Brax tasks): one pair, same seeds 0 and 1, so paired.
    (test,) = read_csv(out / "significance.csv")
    assert (test["metric"], test["algorithm_a"], test["algorithm_b"], test["n_pairs"]) == (
        "average_return", "moe_topk", "moe_topk_sphere", "2")
    a, b = ([float(r["average_return"]) for r in per_seed if r["algorithm"] == algo]
            for algo in ("moe_topk", "moe_topk_sphere"))
    from scipy import stats

    assert float(test["welch_p"]) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert float(test["difference"]) == pytest.approx(np.mean(a) - np.mean(b))
    per_task = read_csv(out / "per_task.csv")
    assert [(r["algorithm"], r["task"]) for r in per_task] == [(a, t) for a in ("moe_topk", "moe_topk_sphere")
                                                               for t in TASKS]
    markdown = (out / "summary.md").read_text()
    for algo in ("moe_topk", "moe_topk_sphere"):
        assert f"| {algo} | 0, 1 |" in markdown  # main table: algorithm and its seeds
        for seed in (0, 1):
            assert f"| {algo} | {algo} | {seed} |" in markdown  # per-seed table: algorithm, run, seed
    assert "avg. success at task end (paper)" in markdown and "final-policy avg. return" in markdown
    assert "## Significance (headline metrics)" in markdown and "n/a" in markdown
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
                lines.append({"task": "ab"[index], "task_index": index, "chunk": c, "seed": s,
                              "env_steps": 100 * (c + 1), "total_env_steps": 200 * index + 100 * (c + 1),
                              "eval_success": value, "eval_return": 10.0 * value})
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
    # end-of-task M[j, j]: a (0.6, 0.5), b (1.0, 0.5) -> paper average (0.8, 0.5); final policy (0.6, 0.5);
    # forgetting ((0.6-0.2)+0)/2 = 0.2 and 0; sequence AUC (0.625, 0.375)
    assert float(per_seed["0"]["average_success"]) == pytest.approx(0.8)
    assert float(per_seed["1"]["average_success"]) == pytest.approx(0.5)
    assert float(per_seed["0"]["final_policy_average_success"]) == pytest.approx(0.6)
    assert float(per_seed["1"]["final_policy_average_success"]) == pytest.approx(0.5)
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


def test_significance_between_hand_made_runs(tmp_path):
    from scipy import stats

    nan = float("nan")
    # Two algorithms on the same seeds 0, 1; a third whose two seeds score the same as the second's.
    matrices = {
        "sphere": [[[0.9, 0.7], [nan, nan]], [[0.4, 0.3], [0.8, 0.6]]],  # paper avg (0.85, 0.65)
        "topk": [[[0.3, 0.2], [nan, nan]], [[0.1, 0.0], [0.2, 0.1]]],  # paper avg (0.25, 0.15)
        "same": [[[0.3, 0.2], [nan, nan]], [[0.3, 0.2], [0.2, 0.1]]],  # paper avg (0.25, 0.15): like topk
    }
    for algo, matrix in matrices.items():
        write_run(tmp_path / algo, algo, "crl", {0: [[0.5, 0.5]], 1: [[0.5, 0.5]]}, matrix)
    out = tmp_path / "report"
    assert main(["report", *(str(tmp_path / a) for a in matrices), "--out", str(out)]) == 0
    rows = {(r["metric"], r["algorithm_a"], r["algorithm_b"]): r for r in read_csv(out / "significance.csv")}
    assert len(rows) == 6  # 3 pairs x (success, return)
    row = rows[("average_success", "sphere", "topk")]
    assert float(row["difference"]) == pytest.approx(0.55) and row["n_pairs"] == "2"
    assert float(row["welch_p"]) == pytest.approx(
        stats.ttest_ind([0.85, 0.65], [0.25, 0.15], equal_var=False).pvalue, rel=1e-9)
    assert float(row["mann_whitney_p"]) == pytest.approx(stats.mannwhitneyu([0.85, 0.65], [0.25, 0.15]).pvalue)
    assert float(row["paired_t_p"]) == pytest.approx(stats.ttest_rel([0.85, 0.65], [0.25, 0.15]).pvalue, rel=1e-9)
    assert float(row["wilcoxon_p"]) == pytest.approx(stats.wilcoxon([0.85, 0.65], [0.25, 0.15]).pvalue)
    tie = rows[("average_success", "topk", "same")]  # identical per-seed values: the paired tests are undefined
    assert float(tie["welch_p"]) == float(tie["mann_whitney_p"]) == 1.0
    assert tie["paired_t_p"] == tie["wilcoxon_p"] == ""
    assert "Wilcoxon: every paired difference is 0" in tie["note"] and float(tie["difference"]) == 0.0
    markdown = (out / "summary.md").read_text()
    assert "## Significance (headline metrics)" in markdown and "Wilcoxon: every paired difference is 0" in markdown
