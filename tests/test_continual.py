"""Continual-learning metrics on hand-made evaluation matrices and curves, against hand-computed numbers."""

import json

import numpy as np
import pytest

from purejaxsphere import continual

NAN = np.nan
# success[i][j][s]: 3 tasks, 2 seeds; NaN where task j was not yet trained (j > i).
SUCCESS = np.array([
    [[0.8, 0.6], [NAN, NAN], [NAN, NAN]],
    [[0.5, 0.6], [0.9, 0.7], [NAN, NAN]],
    [[0.2, 0.6], [0.6, 0.3], [1.0, 0.4]],
])


def test_final_average_and_forgetting_hand_computed():
    np.testing.assert_allclose(continual.final_average(SUCCESS), [(0.2 + 0.6 + 1.0) / 3, (0.6 + 0.3 + 0.4) / 3])
    # F_j = M[j, j] - M[2, j]: seed 0 (0.6, 0.3, 0), seed 1 (0, 0.4, 0)
    np.testing.assert_allclose(continual.forgetting(SUCCESS), [[0.6, 0.0], [0.3, 0.4], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(continual.average_forgetting(SUCCESS), [0.9 / 3, 0.4 / 3])


def test_end_of_task_average_is_the_diagonal_mean():
    # The paper's metric: M[j, j] per seed, seed 0 (0.8, 0.9, 1.0), seed 1 (0.6, 0.7, 0.4)
    np.testing.assert_allclose(continual.end_of_task_scores(SUCCESS), [[0.8, 0.6], [0.9, 0.7], [1.0, 0.4]])
    np.testing.assert_allclose(continual.end_of_task_average(SUCCESS), [0.9, 1.7 / 3])
    # It differs from the final policy's average exactly by the average forgetting.
    np.testing.assert_allclose(continual.end_of_task_average(SUCCESS) - continual.final_average(SUCCESS),
                               continual.average_forgetting(SUCCESS))
    success = SUCCESS.copy()
    success[:, 1] = NAN  # task 1 has no success criterion
    np.testing.assert_allclose(continual.end_of_task_average(success), [0.9, 0.5])


def test_bootstrap_difference_ci_closed_form():
    # a in {0, 1} resampled: means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4; b constant 0 -> CI [0, 1].
    assert continual.bootstrap_difference_ci(np.array([0.0, 1.0]), np.array([0.0, NAN])) == (0.0, 1.0)
    assert continual.bootstrap_difference_ci(np.array([3.0, 3.0]), np.array([1.0, 1.0, 1.0])) == (2.0, 2.0)
    assert np.isnan(continual.bootstrap_difference_ci(np.array([1.0]), np.array([NAN]))).all()


def test_tasks_without_success_are_left_out():
    success = SUCCESS.copy()
    success[:, 1] = NAN  # task 1 has no success criterion
    np.testing.assert_allclose(continual.final_average(success), [(0.2 + 1.0) / 2, (0.6 + 0.4) / 2])
    np.testing.assert_allclose(continual.average_forgetting(success), [0.6 / 2, 0.0])
    assert np.isnan(continual.final_average(np.full((2, 2, 3), NAN))).all()


def rows_of(curves):
    """metrics.jsonl-like rows from {task_index: (task, steps, values [C, S])}."""
    rows = []
    for index, (task, steps, values) in curves.items():
        for c, step in enumerate(steps):
            for s in range(values.shape[1]):
                value = values[c, s]
                rows.append({"task": task, "task_index": index, "env_steps": step, "seed": 10 + s,
                             "eval_success": None if np.isnan(value) else value})
    return rows


def test_auc_forward_transfer_and_sequence_auc_hand_computed():
    # Unequal chunks (100 then 200 steps) check the step weighting of the right Riemann sum.
    rows = rows_of({
        0: ("a", [100, 300], np.array([[0.2, 0.4], [0.8, 0.1]])),
        1: ("b", [100, 300], np.array([[1.0, 0.0], [0.5, 0.0]])),
    })
    curves = continual.task_curves(rows, "eval_success", seeds=[10, 11])
    assert [c.task for c in curves] == ["a", "b"]
    aucs = np.stack([continual.curve_auc(c) for c in curves])
    # a: seed 10 (0.2*100 + 0.8*200)/300 = 0.6, seed 11 (0.4*100 + 0.1*200)/300 = 0.2
    # b: seed 10 (1.0*100 + 0.5*200)/300 = 2/3, seed 11 0
    np.testing.assert_allclose(aucs, [[0.6, 0.2], [2 / 3, 0.0]])
    np.testing.assert_allclose(continual.sequence_auc(curves), [(0.6 + 2 / 3) / 2, 0.1])
    # FT_j = (AUC_j - AUC_j^b) / (1 - AUC_j^b) with AUC^b = (0.2, 0.5)
    ft = continual.forward_transfer(aucs, np.array([0.2, 0.5]))
    np.testing.assert_allclose(ft, [[0.5, 0.0], [1 / 3, -1.0]])
    # A reference that solves the task immediately leaves FT undefined.
    assert np.isnan(continual.forward_transfer(aucs, np.array([1.0, 0.5]))[0]).all()


def test_reference_aucs_average_seeds_and_occurrences():
    rows = rows_of({
        0: ("a", [50, 100], np.array([[0.0, 1.0], [0.0, 1.0]])),  # AUCs 0 and 1
        1: ("b", [50, 100], np.array([[0.2, 0.2], [0.4, 0.4]])),  # AUC 0.3 for both seeds
        2: ("a", [50, 100], np.array([[1.0, 1.0], [1.0, 1.0]])),  # a again: AUC 1
    })
    refs = continual.reference_aucs(continual.task_curves(rows, "eval_success", seeds=[10, 11]))
    assert refs == pytest.approx({"a": 0.75, "b": 0.3})


def test_undefined_success_curve_gives_nan_auc():
    rows = rows_of({0: ("a", [10, 20], np.full((2, 2), NAN)), 1: ("b", [10, 20], np.array([[1.0, 0.0], [1.0, 0.0]]))})
    curves = continual.task_curves(rows, "eval_success", seeds=[10, 11])
    assert np.isnan(continual.curve_auc(curves[0])).all()
    np.testing.assert_allclose(continual.sequence_auc(curves), [1.0, 0.0])  # only task b counts


def test_summary_mean_std_and_bootstrap_ci():
    s = continual.summarize([1.0, 2.0, 3.0, 4.0, NAN])
    assert s.mean == pytest.approx(2.5) and s.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1)) and s.n == 4
    assert 1.0 <= s.ci_low < 2.5 < s.ci_high <= 4.0
    assert continual.summarize([1.0, 2.0, 3.0, 4.0]) == continual.summarize([1.0, 2.0, 3.0, 4.0])  # fixed seed
    # Two seeds {0, 1}: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> 95% CI [0, 1].
    assert continual.bootstrap_ci(np.array([0.0, 1.0])) == (0.0, 1.0)
    one = continual.summarize([0.7])
    assert (one.mean, one.std, one.ci_low, one.ci_high) == pytest.approx((0.7, 0.0, 0.7, 0.7))
    assert np.isnan(continual.summarize([NAN, NAN]).mean)


def test_load_eval_matrix_reads_nulls_as_nan(tmp_path):
    payload = {"tasks": ["a", "b"], "seeds": [0], "return": [[[1.0], [None]], [[2.0], [3.0]]],
               "success": [[[None], [None]], [[None], [None]]]}
    (tmp_path / "eval_matrix.json").write_text(json.dumps(payload))
    matrix = continual.load_eval_matrix(tmp_path)
    assert matrix.tasks == ["a", "b"] and matrix.ret.shape == (2, 2, 1)
    assert np.isnan(matrix.ret[0, 1, 0]) and np.isnan(matrix.success).all()
