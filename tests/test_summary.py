"""summary.json, the W&B summaries and the end-of-run table on hand-made evaluation matrices (closed form)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from purejaxsphere import summary as run_summary_module
from purejaxsphere.logging import json_ready
from purejaxsphere.summary import format_run_summary, run_summary, summary_payload, wandb_summaries

NAN = np.nan
NEXT = ["run directory: runs/x", "next:", "  purejaxsphere report runs/x", "  purejaxsphere eval runs/x"]
TASKS = ["metaworld/hammer-v3", "brax/reacher", "metaworld/push-v3"]
# [trained task i][evaluated task j][seed]: 3 tasks, 3 seeds; NaN where j > i. Member 2 is dropped (its numbers
# are finite here on purpose: the summary must ignore them, not rely on the trainer's NaN).
RETURN = np.array([
    [[10.0, 20.0, 99.0], [NAN, NAN, NAN], [NAN, NAN, NAN]],
    [[6.0, 14.0, 99.0], [30.0, 40.0, 99.0], [NAN, NAN, NAN]],
    [[2.0, 8.0, 99.0], [24.0, 40.0, 99.0], [50.0, 60.0, 99.0]],
])
SUCCESS = np.array([
    [[1.0, 0.5, 1.0], [0.0, 0.0, 0.0], [NAN, NAN, NAN]],
    [[0.5, 0.5, 1.0], [0.0, 0.0, 0.0], [NAN, NAN, NAN]],
    [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0], [0.8, 0.4, 1.0]],
])  # task 1 (Brax) has no success criterion: its zeros must not count
HAS_SUCCESS = [True, False, True]


@pytest.fixture(scope="module")
def summary():
    return json.loads(json.dumps(json_ready(run_summary(TASKS, [0, 1, 2], RETURN, SUCCESS, HAS_SUCCESS, [2]))))


def test_paper_metric_final_policy_and_forgetting_closed_form(summary):
    # Paper: mean_j M[j, j]. Return seed 0 (10 + 30 + 50) / 3 = 30, seed 1 (20 + 40 + 60) / 3 = 40.
    assert summary["average_return"] == pytest.approx([30.0, 40.0, None])
    assert summary["average_return_mean"] == pytest.approx(35.0)
    # Final policy: mean_j M[2, j]: (2 + 24 + 50) / 3, (8 + 40 + 60) / 3 = 36
    assert summary["final_policy_average_return"][:2] == pytest.approx([76 / 3, 36.0])
    assert summary["final_policy_average_return_mean"] == pytest.approx((76 / 3 + 36) / 2)
    assert summary["forgetting_return"][:2] == pytest.approx([(8 + 6) / 3, (12 + 0) / 3])
    # Success over the tasks that define it (0 and 2): paper (1.0 + 0.8) / 2, (0.5 + 0.4) / 2
    assert summary["average_success"][:2] == pytest.approx([0.9, 0.45])
    assert summary["average_success_mean"] == pytest.approx(0.675)
    assert summary["final_policy_average_success"][:2] == pytest.approx([0.4, 0.45])
    assert summary["forgetting_success"][:2] == pytest.approx([0.5, 0.0])
    # Dropped member: null everywhere, left out of the means; the per-task diagonal is kept for the table.
    assert summary["dropped_seeds"] == [2]
    assert all(summary[k][2] is None for k in ("average_return", "final_policy_average_success", "forgetting_success"))
    assert summary["end_of_task_return"] == [[10.0, 20.0, None], [30.0, 40.0, None], [50.0, 60.0, None]]
    assert summary["end_of_task_success"][1] == [None, None, None]
    assert summary["tasks"] == TASKS and summary["seeds"] == [0, 1, 2]


def test_brax_only_run_has_no_success_keys():
    out = run_summary(["brax/reacher"], [0, 1], RETURN[:1, :1, :2], SUCCESS[:1, :1, :2], [False])
    assert not [k for k in out if "success" in k]
    assert out["average_return_mean"] == out["final_policy_average_return_mean"] == pytest.approx(15.0)
    every_seed_dropped = run_summary(["brax/reacher"], [0], RETURN[:1, :1, :1], SUCCESS[:1, :1, :1], [False], [0])
    assert every_seed_dropped["average_return_mean"] is None


def test_summary_payload_of_a_trainer_result_names_the_sweep():
    result = SimpleNamespace(tasks=TASKS, seeds=[0, 0, 1], eval_return=RETURN, eval_success=SUCCESS, dropped=[2],
                             sweep_key="sphere.ratio", sweep_values=[0.01, 0.05, 0.01])
    payload = summary_payload(result, HAS_SUCCESS)
    assert payload["sweep_key"] == "sphere.ratio" and payload["sweep_values"] == [0.01, 0.05, 0.01]
    np.testing.assert_allclose(payload["average_return"][:2], [30.0, 40.0])
    assert payload["dropped_seeds"] == [1]
    # W&B: sweep members share their seed's run, so the keys carry the value; dropped members give nothing.
    per_seed = wandb_summaries(json_ready(payload))
    assert per_seed[0]["average_return[sphere.ratio=0.01]"] == pytest.approx(30.0)
    assert per_seed[0]["average_return[sphere.ratio=0.05]"] == pytest.approx(40.0)
    assert per_seed[1] == {}


def test_wandb_summaries_without_sweep(summary):
    per_seed = wandb_summaries(summary)
    assert set(per_seed) == {0, 1, 2} and per_seed[2] == {}
    assert per_seed[1] == pytest.approx({
        "average_return": 40.0, "final_policy_average_return": 36.0, "forgetting_return": 4.0,
        "average_success": 0.45, "final_policy_average_success": 0.45, "forgetting_success": 0.0})


def test_format_run_summary_lines(summary):
    text = format_run_summary(summary, "runs/x")
    lines = text.splitlines()
    assert lines[0] == ("purejaxsphere: done: 3 tasks x 3 seeds, 1 dropped (2); each task evaluated at the end of "
                        "its own training (mean ± std over seeds):")
    assert lines[1].split() == ["task", "return", "success"]
    # Task 0 over the live seeds: return (10, 20) -> 15 ± 7.071, success (1.0, 0.5) -> 0.750 ± 0.354
    assert lines[2].split() == ["0", "metaworld/hammer-v3", "15.000", "±", "7.071", "0.750", "±", "0.354"]
    assert lines[3].split() == ["1", "brax/reacher", "35.000", "±", "7.071", "n/a"]
    assert lines[5] == ("average success (paper metric, mean over tasks at the end of each): 0.675 ± 0.318")
    assert lines[6] == ("final-policy average success (last policy on every task): 0.425 ± 0.035; "
                        "forgetting 0.250 ± 0.354")
    assert lines[7] == "average return (paper metric): 35.000 ± 7.071; final-policy average return: 30.667 ± 7.542"
    assert lines[8:] == NEXT


def test_format_run_summary_of_a_return_only_run():
    out = json_ready(run_summary(["brax/reacher"], [4], RETURN[:1, :1, :1], SUCCESS[:1, :1, :1], [False]))
    lines = format_run_summary(out, "/abs/run").splitlines()
    assert lines[0].startswith("purejaxsphere: done: 1 task x 1 seed;")
    assert lines[2].split() == ["0", "brax/reacher", "10.000", "±", "0.000", "n/a"]
    assert lines[3] == "average return (paper metric, mean over tasks at the end of each): 10.000 ± 0.000"
    assert "success" not in "\n".join(lines[3:])
    assert run_summary_module.DEFINITIONS["average_<score>"].startswith("mean over tasks j of M[j, j]")


def test_format_run_summary_of_a_sweep_has_one_block_per_value():
    """A sweep's members are never pooled: each value's block equals the summary of that value's members alone."""
    values = [0.0, 0.05, 0.0, 0.05]  # members: (seed 0, 0.0), (seed 0, 0.05), (seed 1, 0.0), (seed 1, 0.05)
    ret = np.concatenate([RETURN[:, :, :2], RETURN[:, :, :2] + 100.0], axis=2)[:, :, [0, 2, 1, 3]]
    success = np.concatenate([SUCCESS[:, :, :2], SUCCESS[:, :, :2] * 0.0], axis=2)[:, :, [0, 2, 1, 3]]
    swept = {**json_ready(run_summary(TASKS, [0, 0, 1, 1], ret, success, HAS_SUCCESS)),
             "sweep_key": "sphere.ratio", "sweep_values": values}
    lines = format_run_summary(json.loads(json.dumps(swept)), "runs/x").splitlines()
    assert lines[0].startswith("purejaxsphere: done: 3 tasks x 2 seeds x 2 values of sphere.ratio;")
    for value, offset, scale in ((0.0, 0.0, 1.0), (0.05, 100.0, 0.0)):
        alone = json_ready(run_summary(TASKS, [0, 1], RETURN[:, :, :2] + offset, SUCCESS[:, :, :2] * scale,
                                       HAS_SUCCESS))
        block = format_run_summary(json.loads(json.dumps(alone)), "runs/x").splitlines()[1:-4]
        start = lines.index(f"sphere.ratio={value:g}:") + 1
        assert lines[start:start + len(block)] == block
    assert lines[-4:] == NEXT
