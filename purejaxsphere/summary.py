"""What a finished run reports about itself: eval_matrix.json, summary.json, the W&B summaries and the table
`purejaxsphere train` prints at the end. Pure functions of the evaluation matrix (host side, NumPy).

The headline is the SPHERE paper's metric: each task scored right after its own training, averaged over tasks,
`average_<score> = mean_j M[j, j]` (the official trainer evaluates only the task it trains). Beside it, named so
they cannot be taken for it: the final policy on every task, `final_policy_average_<score> = mean_j M[N-1, j]`, and
the average forgetting, `forgetting_<score> = mean_j (M[j, j] - M[N-1, j])` (purejaxsphere/continual.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from purejaxsphere import continual

SCORES = ("return", "success")
DEFINITIONS = {
    "average_<score>": "mean over tasks j of M[j, j]: each task at the end of its own training (the SPHERE paper's "
                       "average success; the headline)",
    "final_policy_average_<score>": "mean over tasks j of M[N-1, j]: the final policy on every task",
    "forgetting_<score>": "mean over tasks j of M[j, j] - M[N-1, j] (Continual World; the last task counts as 0)",
    "end_of_task_<score>": "[task j][seed] M[j, j]",
    "M": "eval_matrix.json: M[i, j, s] = seed s's score on task j after training task i",
}


def eval_matrix_payload(result: Any, has_success: Sequence[bool]) -> dict[str, Any]:
    """The evaluation matrix as JSON: entry [i][j][s] = seed s's score on task j after training task i."""
    return {
        "tasks": result.tasks,
        "seeds": result.seeds,
        "layout": "[trained task i][evaluated task j][seed]; null where j > i or undefined",
        **sweep_payload(result),
        "return": result.eval_return,
        "success": masked_success(result.eval_success, has_success),
    }


def sweep_payload(result: Any) -> dict[str, Any]:
    """With a sweep, the members of the seed axis are (value, seed) pairs: name the value of each."""
    if not any(v is not None for v in result.sweep_values):
        return {}
    return {"sweep_key": result.sweep_key, "sweep_values": result.sweep_values}


def masked_success(success: np.ndarray, has_success: Sequence[bool]) -> np.ndarray:
    """Success [i, j, s] with NaN (null in the JSON) for the tasks j without a success criterion (Brax)."""
    out = np.array(success, dtype=float)
    out[:, ~np.asarray(has_success, dtype=bool)] = np.nan
    return out


def mean_over_seeds(values: np.ndarray) -> float | None:
    """Mean of the finite per-seed values; None when there is none (every seed dropped, or undefined)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


def run_summary(
    tasks: Sequence[str], seeds: Sequence[int], ret: np.ndarray, success: np.ndarray, has_success: Sequence[bool],
    dropped: Sequence[int] = (),
) -> dict[str, Any]:
    """summary.json's scores from the evaluation matrix [i, j, s]: per seed (dropped members, by index: NaN, null
    in the JSON) and their mean over the other seeds. Success keys only when some task has a success criterion."""
    live = np.array([m not in dropped for m in range(len(seeds))])
    out: dict[str, Any] = {"tasks": list(tasks), "seeds": list(seeds),
                           "dropped_seeds": [seeds[m] for m in dropped]}
    matrices = {"return": np.array(ret, dtype=float), "success": masked_success(success, has_success)}
    for score in SCORES if any(has_success) else SCORES[:1]:
        matrix = matrices[score]
        matrix[:, :, ~live] = np.nan
        per_seed = {
            f"average_{score}": continual.end_of_task_average(matrix),
            f"final_policy_average_{score}": continual.final_average(matrix),
            f"forgetting_{score}": continual.average_forgetting(matrix),
        }
        for key, values in per_seed.items():
            out[key], out[f"{key}_mean"] = values, mean_over_seeds(values)
        out[f"end_of_task_{score}"] = continual.end_of_task_scores(matrix)
    out["definitions"] = DEFINITIONS
    return out


def summary_payload(result: Any, has_success: Sequence[bool]) -> dict[str, Any]:
    """summary.json of a trainer result (train.RunResult)."""
    summary = run_summary(result.tasks, result.seeds, result.eval_return, result.eval_success, has_success,
                          result.dropped)
    return {**summary, **sweep_payload(result)}


def wandb_summaries(summary: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per seed, the finite scalar scores of summary.json for that seed's W&B run summary. Sweep members share
    their seed's W&B run, so their keys carry the value: `average_success[sphere.ratio=0.05]`."""
    values = summary.get("sweep_values") or [None] * len(summary["seeds"])
    keys = [k for k in summary if k.startswith(("average_", "final_policy_average_", "forgetting_"))
            and not k.endswith("_mean")]
    out: dict[int, dict[str, float]] = {}
    for m, seed in enumerate(summary["seeds"]):
        suffix = "" if values[m] is None else f"[{summary['sweep_key']}={values[m]:g}]"
        entry = out.setdefault(seed, {})
        for key in keys:
            value = summary[key][m]
            if value is not None and math.isfinite(value):
                entry[key + suffix] = float(value)
    return out


def format_mean_std(values: Any) -> str:
    """'mean ± std' over the finite values (std ddof 1; 0 for one value); 'n/a' when none is finite."""
    from purejaxsphere.report import format_number

    x = continual.as_float_array(values).ravel()
    x = x[np.isfinite(x)]
    if not x.size:
        return "n/a"
    std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    return f"{format_number(float(x.mean()))} ± {format_number(std)}"


def text_table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows of cells as left-aligned columns."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def sweep_groups(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """summary.json split by swept value: (label `key=value`, the summary of that value's members). Without a
    sweep (or with one value): [("", summary)]."""
    values = summary.get("sweep_values") or []
    distinct = list(dict.fromkeys(values))
    if len(distinct) <= 1:
        return [("", summary)]
    groups = []
    for value in distinct:
        members = [m for m, v in enumerate(values) if v == value]
        part = {**summary, "seeds": [summary["seeds"][m] for m in members]}
        for key, scores in summary.items():
            if key.startswith(("average_", "final_policy_average_", "forgetting_")) and not key.endswith("_mean"):
                part[key] = [scores[m] for m in members]
            elif key.startswith("end_of_task_"):
                part[key] = [[row[m] for m in members] for row in scores]
        groups.append((f"{summary['sweep_key']}={value:g}", part))
    return groups


def format_scores(summary: dict[str, Any]) -> list[str]:
    """Per task the end-of-task return and success, then the headline averages (mean ± std over the members)."""
    with_success = "average_success" in summary
    rows = [["task", "return", "success"]]
    for j, task in enumerate(summary["tasks"]):
        success = format_mean_std(summary["end_of_task_success"][j]) if with_success else "n/a"
        rows.append([f"{j} {task}", format_mean_std(summary["end_of_task_return"][j]), success])
    lines = text_table(rows)
    score = "success" if with_success else "return"
    lines.append(f"average {score} (paper metric, mean over tasks at the end of each): "
                 f"{format_mean_std(summary[f'average_{score}'])}")
    lines.append(f"final-policy average {score} (last policy on every task): "
                 f"{format_mean_std(summary[f'final_policy_average_{score}'])}; "
                 f"forgetting {format_mean_std(summary[f'forgetting_{score}'])}")
    if with_success:
        lines.append(f"average return (paper metric): {format_mean_std(summary['average_return'])}; final-policy "
                     f"average return: {format_mean_std(summary['final_policy_average_return'])}")
    return lines


def format_run_summary(summary: dict[str, Any], run_dir: str) -> str:
    """The end-of-run text: per task its end-of-task return and success (mean ± std over the live seeds), the
    headline averages (one block per swept value), the run directory and the commands to run next. `summary` as
    summary.json holds it."""
    tasks, dropped, groups = summary["tasks"], summary["dropped_seeds"], sweep_groups(summary)
    kept = f", {len(dropped)} dropped ({', '.join(map(str, dropped))})" if dropped else ""
    count = lambda n, noun: f"{n} {noun}" + ("" if n == 1 else "s")  # noqa: E731
    members = count(len(groups[0][1]["seeds"]), "seed")
    if len(groups) > 1:
        members = f"{members} x {len(groups)} values of {summary['sweep_key']}"
    lines = [f"purejaxsphere: done: {count(len(tasks), 'task')} x {members}{kept}; each task evaluated at the "
             "end of its own training (mean ± std over seeds):"]
    for label, part in groups:
        lines += ([f"{label}:"] if label else []) + format_scores(part)
    lines += [f"run directory: {run_dir}", "next:", f"  purejaxsphere report {run_dir}",
              f"  purejaxsphere eval {run_dir}"]
    return "\n".join(lines)
