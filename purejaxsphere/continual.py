"""Continual-learning metrics (host side, NumPy) from a run directory's evaluation matrix and per-chunk curves.

Definitions follow Continual World (Wolczyk et al. 2021), with p_j(t) the evaluation score (success or return) on
task j at time t, N tasks, each trained for Delta env steps:
- average performance        A = (1/N) sum_j M[j, j]: each task scored at the end of its own training, the SPHERE
                             paper's average success (its trainer evaluates only the task it trains, so CRL and RL
                             runs compare on plasticity, not forgetting); the headline of summary.json and `report`
- final-policy average       P = (1/N) sum_j p_j(T) = mean_j M[N-1, j] (Continual World's final performance)
- forgetting of task j       F_j = p_j(end of task j) - p_j(T) = M[j, j] - M[N-1, j]; average F = (1/N) sum_j F_j
                             (the last task's F is 0 by construction and counts in the 1/N, as in Continual World)
- per-task AUC               AUC_j = (1/Delta) integral of p_j(t) over task j's own training interval; the chunk
                             evaluations are a right Riemann sum: each chunk's evaluation stands for that chunk
- forward transfer           FT_j = (AUC_j - AUC_j^b) / (1 - AUC_j^b), AUC_j^b the same area for a reference run that
                             trains task j from scratch (`protocol=rl`), averaged over its seeds; success only
                             (scores in [0, 1]); undefined (NaN) when AUC_j^b = 1
- sequence AUC               area under the current-task evaluation curve over the whole sequence divided by its
                             length = the step-weighted mean of the AUC_j
M[i, j, s] is seed s's score on task j after training task i (eval_matrix.json). Tasks without a success criterion
have null (NaN) success and are left out of success averages; a quantity with no defined term is NaN.

Over seeds: mean, sample standard deviation (ddof = 1; 0 for one seed) and a 95% percentile-bootstrap confidence
interval of the mean (10,000 resamples of the seeds with replacement, NumPy default_rng(0), so reports are
reproducible).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 10_000


@dataclass
class EvalMatrix:
    """The evaluation matrix of a run: [trained task i, evaluated task j, seed]; NaN where j > i or undefined."""

    tasks: list[str]
    seeds: list[int]
    ret: np.ndarray
    success: np.ndarray


def as_float_array(values: Any) -> np.ndarray:
    """Nested lists with None -> float array with NaN."""
    return np.array(values, dtype=float)


def load_eval_matrix(run_dir: str | Path) -> EvalMatrix:
    payload = json.loads((Path(run_dir) / "eval_matrix.json").read_text())
    return EvalMatrix(
        list(payload["tasks"]), list(payload["seeds"]), as_float_array(payload["return"]),
        as_float_array(payload["success"]),
    )


def nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where every value is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def end_of_task_scores(matrix: np.ndarray) -> np.ndarray:
    """M[j, j, :]: each task's score right after its own training, per seed. [N, S]"""
    n = matrix.shape[0]
    return matrix[np.arange(n), np.arange(n)]


def end_of_task_average(matrix: np.ndarray) -> np.ndarray:
    """The paper's average performance per seed: mean over tasks of M[j, j, :] (undefined tasks left out). [S]"""
    return nanmean(end_of_task_scores(matrix), axis=0)


def final_average(matrix: np.ndarray) -> np.ndarray:
    """Final average performance per seed: mean over tasks of M[N-1, j, :] (undefined tasks left out). [S]"""
    return nanmean(matrix[-1], axis=0)


def forgetting(matrix: np.ndarray) -> np.ndarray:
    """Per-task forgetting F_j = M[j, j] - M[N-1, j], per seed. [N, S]"""
    return end_of_task_scores(matrix) - matrix[-1]


def average_forgetting(matrix: np.ndarray) -> np.ndarray:
    """(1/N) sum_j F_j per seed (over the tasks where it is defined). [S]"""
    return nanmean(forgetting(matrix), axis=0)


@dataclass
class TaskCurve:
    """The evaluations of one task of the sequence during its own training."""

    task: str
    steps: np.ndarray  # [C] env steps into the task at each evaluation (chunk end), increasing
    values: np.ndarray  # [C, S] score per evaluation and seed (NaN where undefined)


def task_curves(rows: Iterable[dict[str, Any]], key: str, seeds: Sequence[int]) -> list[TaskCurve]:
    """Per-task evaluation curves of metrics.jsonl rows (task_index, task, env_steps, seed, `key`), one per task
    index in sequence order; seeds in the given order (a seed missing at a step gives NaN)."""
    by_task: dict[int, dict[str, Any]] = {}
    column = {seed: s for s, seed in enumerate(seeds)}
    for row in rows:
        entry = by_task.setdefault(row["task_index"], {"task": row["task"], "points": {}})
        value = row.get(key)
        point = entry["points"].setdefault(row["env_steps"], np.full(len(seeds), np.nan))
        if row["seed"] in column:
            point[column[row["seed"]]] = np.nan if value is None else float(value)
    curves = []
    for index in sorted(by_task):
        points = by_task[index]["points"]
        steps = np.array(sorted(points), dtype=float)
        curves.append(TaskCurve(by_task[index]["task"], steps, np.stack([points[s] for s in sorted(points)])))
    return curves


def curve_auc(curve: TaskCurve) -> np.ndarray:
    """(1/Delta) integral of the curve over the task, Delta = last evaluation's step count; right Riemann sum. [S]"""
    widths = np.diff(np.concatenate([[0.0], curve.steps]))
    return np.sum(curve.values * widths[:, None], axis=0) / curve.steps[-1]


def sequence_auc(curves: Sequence[TaskCurve]) -> np.ndarray:
    """Area under the current-task evaluation curve over the whole sequence / its length, over the tasks whose
    curve is defined (success: tasks with a success criterion). [S]"""
    aucs = np.stack([curve_auc(c) for c in curves])  # [N, S]
    lengths = np.array([c.steps[-1] for c in curves])[:, None] * np.isfinite(aucs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(aucs * lengths, axis=0) / np.sum(lengths, axis=0)


def reference_aucs(curves: Iterable[TaskCurve]) -> dict[str, float]:
    """AUC^b per task name from reference (single-task, `protocol=rl`) curves: mean over seeds and occurrences."""
    collected: dict[str, list[np.ndarray]] = {}
    for curve in curves:
        collected.setdefault(curve.task, []).append(curve_auc(curve))
    return {task: float(nanmean(np.concatenate(values))) for task, values in collected.items()}


def forward_transfer(task_aucs: np.ndarray, reference_auc: np.ndarray) -> np.ndarray:
    """FT_j = (AUC_j - AUC_j^b) / (1 - AUC_j^b) for task AUCs [N, S] and reference AUCs [N]; NaN where AUC^b is
    NaN or 1 (the reference solves the task at once: no room to transfer). [N, S]"""
    ref = np.asarray(reference_auc, dtype=float)[:, None]
    room = 1.0 - ref
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(room) > 1e-9, (task_aucs - ref) / room, np.nan)


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: mean, sample std, 95% bootstrap CI of the mean, and the values it came from."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return int(np.sum(np.isfinite(self.values)))


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of finite `values` (NaN, NaN when there are none)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    index = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    means = x[index].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_difference_ci(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of mean(a) - mean(b) over the finite values, the two samples resampled
    independently (unpaired seeds); NaN, NaN when either is empty. For paired seeds use bootstrap_ci(a - b)."""
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means_x = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    means_y = y[rng.integers(0, y.size, size=(resamples, y.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means_x - means_y, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean, std (ddof 1), 95% bootstrap CI over the finite values; all NaN when none is finite."""
    raw = np.asarray(values, dtype=float)
    x = raw[np.isfinite(raw)]
    if x.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, tuple(raw.tolist()))
    std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    low, high = bootstrap_ci(x)
    return Summary(float(np.mean(x)), std, low, high, tuple(raw.tolist()))
