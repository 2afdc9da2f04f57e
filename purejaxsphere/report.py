"""`purejaxsphere report RUN_DIR [RUN_DIR ...]`: paper-style tables (markdown, CSV) and PNG plots comparing algorithms.

Runs are grouped by their config's `algo` (or a label given as LABEL=RUN_DIR); every seed of every run in a group is
one sample. The headline is the SPHERE paper's average success: each task scored at the end of its own training,
mean_j M[j, j]; the final policy's average over all tasks, mean_j M[N-1, j], is the `final_policy_average_*`
column. The metrics and their definitions are in purejaxsphere/continual.py and docs/experiments.md.

Writes into the output folder:
  summary.md      the tables below in markdown, with the bootstrap note, the significance tests and links to the
                  runs' videos
  summary.csv     per algorithm: mean, std, 95% CI and per-seed values of every metric
  significance.csv per pair of algorithms, on the headline metrics: difference of means (bootstrap CI), Welch's t
                  and Mann-Whitney U p-values, and with the same seeds paired t and Wilcoxon signed-rank
  per_seed.csv    per algorithm, run and seed: every metric
  per_task.csv    per algorithm and task: end-of-task and final-policy score, forgetting, AUC, forward transfer
                  (mean and std over seeds)
  curves.png      current-task evaluation success and return across the sequence (x = total env steps, task
                  boundaries), each task's end-of-training score (the paper's metric) marked
  eval_matrix.png mean evaluation matrix per algorithm (success, when any task has it, and return)
  ranks.png       eNTK and Gram effective ranks over training and against each other (when logged)
  routing_load.png per-expert routing load over training (when logged)
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from purejaxsphere import continual
from purejaxsphere.continual import EvalMatrix, Summary

DPI = 100
CURVES_SIZE = (12.0, 4.5)  # inches; PNG = size x DPI pixels
RANKS_SIZE = (15.0, 4.5)
PANEL_SIZE = (4.5, 4.0)  # eval matrix and routing load: one panel per algorithm (and per metric row)

METRICS = {  # name (as in summary.json) -> (column title, True if it needs reference runs)
    "average_success": ("avg. success at task end (paper)", False),
    "average_return": ("avg. return at task end (paper)", False),
    "final_policy_average_success": ("final-policy avg. success", False),
    "final_policy_average_return": ("final-policy avg. return", False),
    "forgetting_success": ("forgetting (success)", False),
    "forgetting_return": ("forgetting (return)", False),
    "forward_transfer": ("forward transfer (success)", True),
    "auc_success": ("AUC success", False),
    "auc_return": ("AUC return", False),
}


class ReportError(ValueError):
    """A run directory or reference that cannot be reported; the message says which and why."""


@dataclass
class Run:
    path: Path
    label: str
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    matrix: EvalMatrix

    @property
    def name(self) -> str:
        return self.path.name


def split_label(arg: str) -> tuple[str | None, Path]:
    """"LABEL=RUN_DIR" -> (LABEL, RUN_DIR); a plain (or existing) path -> (None, path)."""
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        return label, Path(path)
    return None, Path(arg)


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Read config.yaml, metrics.jsonl and eval_matrix.json of a finished run directory."""
    from purejaxsphere.logging import read_metrics

    path = Path(path)
    for name in ("config.yaml", "metrics.jsonl", "eval_matrix.json"):
        if not (path / name).is_file():
            raise ReportError(f"{path}: no {name} (not a run directory, or the run has not finished)")
    config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    return Run(path, label or str(config.get("algo", path.name)), config, read_metrics(path),
               continual.load_eval_matrix(path))


def split_sweep(run: Run) -> list[Run]:
    """A run with a sweep (`sweep.key`/`sweep.values`) as one run per swept value, labelled `<label> key=value`:
    one curve and one table row per value."""
    payload = json.loads((run.path / "eval_matrix.json").read_text())
    values, key = payload.get("sweep_values"), payload.get("sweep_key")
    if not values:
        return [run]
    parts = []
    for value in dict.fromkeys(values):  # distinct, in order
        members = [m for m, v in enumerate(values) if v == value]
        m = run.matrix
        matrix = EvalMatrix(m.tasks, [m.seeds[i] for i in members], m.ret[:, :, members], m.success[:, :, members])
        rows = [row for row in run.rows if row.get("sweep_value") == value]
        parts.append(Run(run.path, f"{run.label} {key}={value:g}", run.config, rows, matrix))
    return parts


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs by label, in the order labels first appear; a group's runs must share the task sequence."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    for label, members in groups.items():
        if any(r.matrix.tasks != members[0].matrix.tasks for r in members):
            raise ReportError(f"{label}: runs {[r.name for r in members]} train different task sequences")
    return groups


def reference_task_aucs(references: Sequence[Run]) -> dict[str, float]:
    """AUC^b of the success curve per task name, pooled over the reference runs (each must use protocol=rl)."""
    curves = []
    for ref in references:
        if ref.config.get("protocol") != "rl":
            raise ReportError(f"{ref.path}: a forward-transfer reference must be trained with protocol=rl "
                              f"(single task from scratch), found protocol={ref.config.get('protocol')!r}")
        curves += continual.task_curves(ref.rows, "eval_success", ref.matrix.seeds)
    return continual.reference_aucs(curves)


@dataclass
class SeedScores:
    """Every metric of one seed of one run; per_task holds [N] arrays (final scores, forgetting, AUC, FT)."""

    run: str
    seed: int
    values: dict[str, float]
    per_task: dict[str, np.ndarray] = field(default_factory=dict)


def seed_scores(run: Run, reference_auc: dict[str, float] | None) -> list[SeedScores]:
    """The metrics of every seed of a run (forward transfer only when reference AUCs are given)."""
    m = run.matrix
    success_curves = continual.task_curves(run.rows, "eval_success", m.seeds)
    return_curves = continual.task_curves(run.rows, "eval_return", m.seeds)
    task_auc_success = np.stack([continual.curve_auc(c) for c in success_curves])  # [N, S]
    per_metric = {
        "average_success": continual.end_of_task_average(m.success),
        "average_return": continual.end_of_task_average(m.ret),
        "final_policy_average_success": continual.final_average(m.success),
        "final_policy_average_return": continual.final_average(m.ret),
        "forgetting_success": continual.average_forgetting(m.success),
        "forgetting_return": continual.average_forgetting(m.ret),
        "auc_success": continual.sequence_auc(success_curves),
        "auc_return": continual.sequence_auc(return_curves),
    }
    per_task = {
        "average_success": continual.end_of_task_scores(m.success),
        "average_return": continual.end_of_task_scores(m.ret),
        "final_policy_average_success": m.success[-1], "final_policy_average_return": m.ret[-1],
        "forgetting_success": continual.forgetting(m.success), "forgetting_return": continual.forgetting(m.ret),
        "auc_success": task_auc_success,
    }
    if reference_auc is not None:
        ref = np.array([reference_auc.get(task, np.nan) for task in m.tasks])
        ft = continual.forward_transfer(task_auc_success, ref)
        per_metric["forward_transfer"] = continual.nanmean(ft, axis=0)
        per_task["forward_transfer"] = ft
    return [
        SeedScores(run.name, seed, {k: float(v[s]) for k, v in per_metric.items()},
                   {k: v[:, s] for k, v in per_task.items()})
        for s, seed in enumerate(m.seeds)
    ]


@dataclass
class GroupReport:
    label: str
    runs: list[Run]
    seeds: list[SeedScores]

    def summary(self, metric: str) -> Summary:
        return continual.summarize([s.values[metric] for s in self.seeds])

    def seed_ids(self) -> list[str]:
        many_runs = len(self.runs) > 1
        return [f"{s.run}:{s.seed}" if many_runs else str(s.seed) for s in self.seeds]


def metric_names(with_references: bool) -> list[str]:
    return [name for name, (_, needs_ref) in METRICS.items() if with_references or not needs_ref]


def format_number(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3f}"


def format_summary(s: Summary) -> str:
    if not math.isfinite(s.mean):
        return "n/a"
    return f"{format_number(s.mean)} ± {format_number(s.std)} [{format_number(s.ci_low)}, {format_number(s.ci_high)}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def short_task(task: str) -> str:
    return task.rsplit("/", 1)[-1]


def per_task_rows(group: GroupReport, names: Sequence[str]) -> list[dict[str, Any]]:
    """Per task of the group's sequence: mean and std over seeds of every per-task metric."""
    tasks = group.runs[0].matrix.tasks
    rows = []
    for j, task in enumerate(tasks):
        row: dict[str, Any] = {"algorithm": group.label, "task_index": j, "task": task}
        for name in names:
            if name not in group.seeds[0].per_task:
                continue
            s = continual.summarize([seed.per_task[name][j] for seed in group.seeds])
            row[f"{name}_mean"], row[f"{name}_std"] = s.mean, s.std
        rows.append(row)
    return rows


PER_TASK_METRICS = ["average_success", "average_return", "final_policy_average_success",
                    "final_policy_average_return", "forgetting_success", "forgetting_return", "auc_success",
                    "forward_transfer"]


SIGNIFICANCE_METRICS = ["average_success", "average_return"]  # the headline metrics


def significance_rows(groups: Sequence[GroupReport], names: Sequence[str]) -> list[dict[str, Any]]:
    """For every pair of algorithms (a before b in report order) and headline metric with a finite value: the
    difference of means a - b with its bootstrap CI and the p-values of significance.compare."""
    from purejaxsphere import significance

    rows = []
    for name in [n for n in SIGNIFICANCE_METRICS if n in names]:
        if not any(math.isfinite(s.values[name]) for g in groups for s in g.seeds):
            continue
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                c = significance.compare([s.values[name] for s in a.seeds], [s.values[name] for s in b.seeds],
                                         [s.seed for s in a.seeds], [s.seed for s in b.seeds])
                rows.append({
                    "metric": name, "algorithm_a": a.label, "algorithm_b": b.label, "n_a": c.n_a, "n_b": c.n_b,
                    "mean_a": c.mean_a, "mean_b": c.mean_b, "difference": c.difference,
                    "difference_ci_low": c.ci_low, "difference_ci_high": c.ci_high,
                    "welch_t": c.welch.statistic, "welch_p": c.welch.p_value,
                    "mann_whitney_u": c.mann_whitney.statistic, "mann_whitney_p": c.mann_whitney.p_value,
                    "n_pairs": c.n_pairs, "paired_difference": c.paired_difference,
                    "paired_difference_ci_low": c.paired_ci_low, "paired_difference_ci_high": c.paired_ci_high,
                    "paired_t": c.paired_t.statistic, "paired_t_p": c.paired_t.p_value,
                    "wilcoxon_w": c.wilcoxon.statistic, "wilcoxon_p": c.wilcoxon.p_value,
                    "note": "; ".join(c.notes),
                })
    return rows


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def significance_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The significance section of summary.md (empty without a pair of algorithms)."""
    if not rows:
        return []
    header = ["metric", "a", "b", "seeds a / b (pairs)", "a - b [95% CI]", "Welch p", "Mann-Whitney p",
              "paired t p", "Wilcoxon p", "note"]
    table = []
    for r in rows:
        diff = (f"{format_number(r['difference'])} [{format_number(r['difference_ci_low'])}, "
                f"{format_number(r['difference_ci_high'])}]" if math.isfinite(r["difference"]) else "n/a")
        table.append([METRICS[r["metric"]][0], r["algorithm_a"], r["algorithm_b"],
                      f"{r['n_a']} / {r['n_b']} ({r['n_pairs'] or 'unpaired'})", diff, format_p(r["welch_p"]),
                      format_p(r["mann_whitney_p"]), format_p(r["paired_t_p"]), format_p(r["wilcoxon_p"]),
                      r["note"] or ""])
    note = ("Two-sided tests over seeds (scipy.stats): Welch's t (unequal variances) and Mann-Whitney U; with the "
            "same seeds on both sides also the paired t-test and Wilcoxon signed-rank (pairs by seed). a - b: "
            "difference of the means, 95% bootstrap CI resampling each side's seeds. No multiple-comparison "
            "correction. n/a: the test is undefined (see the note).")
    return ["## Significance (headline metrics)", "", note, "", markdown_table(header, table), ""]


def summary_markdown(
    groups: Sequence[GroupReport], names: Sequence[str], references: Sequence[Run],
    significance: Sequence[dict[str, Any]] = (),
) -> str:
    parts = ["# purejaxsphere report", ""]
    parts.append("Runs: " + "; ".join(f"`{g.label}`: " + ", ".join(str(r.path) for r in g.runs) for g in groups))
    if references:
        parts.append("Forward-transfer references (protocol=rl): " + ", ".join(str(r.path) for r in references))
    note = ("Mean ± std over seeds [95% bootstrap CI of the mean: 10,000 resamples of the seeds, NumPy "
            "default_rng(0)]; n/a: undefined (e.g. no task with a success criterion). "
            "Definitions: docs/experiments.md.")
    parts += ["", note, "", "## Continual-learning metrics", "",
              "avg. ... at task end (paper): mean over tasks j of M[j, j], each task right after its own training, "
              "the SPHERE paper's average success; final-policy avg.: mean over j of M[N-1, j], the last policy on "
              "every task; forgetting: mean over j of M[j, j] - M[N-1, j].", ""]
    header = ["algorithm", "seeds"] + [METRICS[n][0] for n in names]
    rows = [[g.label, ", ".join(g.seed_ids())] + [format_summary(g.summary(n)) for n in names] for g in groups]
    parts += [markdown_table(header, rows), "", "## Per seed", ""]
    header = ["algorithm", "run", "seed"] + [METRICS[n][0] for n in names]
    rows = [[g.label, s.run, str(s.seed)] + [format_number(s.values[n]) for n in names]
            for g in groups for s in g.seeds]
    parts += [markdown_table(header, rows), "", "## Per task (mean ± std over seeds)", ""]
    task_names = [n for n in PER_TASK_METRICS if n in names]
    header = ["algorithm", "task"] + [METRICS[n][0].replace("avg. ", "") for n in task_names]
    rows = []
    for g in groups:
        for row in per_task_rows(g, task_names):
            cells = [f"{format_number(row[f'{n}_mean'])} ± {format_number(row[f'{n}_std'])}"
                     if math.isfinite(row[f"{n}_mean"]) else "n/a" for n in task_names]
            rows.append([g.label, row["task"]] + cells)
    parts += [markdown_table(header, rows), ""]
    parts += significance_markdown(significance)
    return "\n".join(parts)


def videos_markdown(runs: Sequence[Run], out: Path) -> str:
    """A "Videos" section linking each run's RUN_DIR/videos/*.mp4 (`video=true`, `purejaxsphere render`) relative
    to the report folder, with what its JSON says; empty when no run has videos."""
    import os

    rows = []
    for path in dict.fromkeys(run.path for run in runs):
        for video in sorted((path / "videos").glob("*.mp4")):
            meta = json.loads(video.with_suffix(".json").read_text()) if video.with_suffix(".json").is_file() else {}
            returns = " ".join(f"{r:.2f}" for r in meta.get("returns", []))
            success = " ".join("n/a" if v is None else f"{v:.0f}" for v in meta.get("successes", []))
            link = f"[{video.name}]({Path(os.path.relpath(video.resolve(), out.resolve())).as_posix()})"
            rows.append([path.name, meta.get("task", "?"), str(meta.get("seed", "?")), meta.get("checkpoint", "?"),
                         returns, success, link])
    if not rows:
        return ""
    return "\n".join(["## Videos", "", markdown_table(["run", "task", "seed", "checkpoint", "return", "success",
                                                         "video"], rows), ""])


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})


def summary_csv_rows(groups: Sequence[GroupReport], names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for g in groups:
        row: dict[str, Any] = {"algorithm": g.label, "n_seeds": len(g.seeds), "seeds": ";".join(g.seed_ids())}
        for n in names:
            s = g.summary(n)
            row.update({f"{n}_mean": s.mean, f"{n}_std": s.std, f"{n}_ci_low": s.ci_low, f"{n}_ci_high": s.ci_high,
                        f"{n}_values": ";".join(repr(v) if math.isfinite(v) else "" for v in s.values)})
        rows.append(row)
    return rows


# ---- plots ------------------------------------------------------------------------------------------------------

def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_curve(runs: Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total env steps, mean, std) over every seed of the runs of `key` per metrics row; NaN values ignored."""
    points: dict[float, list[float]] = {}
    for run in runs:
        for row in run.rows:
            value = row.get(key)
            if value is not None and math.isfinite(value):
                points.setdefault(row["total_env_steps"], []).append(float(value))
    steps = np.array(sorted(points), dtype=float)
    values = [np.array(points[s]) for s in sorted(points)]
    return steps, np.array([v.mean() for v in values]), np.array([v.std() for v in values])


def task_boundaries(run: Run) -> list[tuple[str, float, float]]:
    """(task, first, last total env step) of each task of a run's sequence, from its metrics rows."""
    spans: dict[int, list[Any]] = {}
    for row in run.rows:
        span = spans.setdefault(row["task_index"], [row["task"], math.inf, -math.inf])
        span[1] = min(span[1], row["total_env_steps"] - row["env_steps"])
        span[2] = max(span[2], row["total_env_steps"])
    return [(spans[i][0], spans[i][1], spans[i][2]) for i in sorted(spans)]


def mark_tasks(ax: Any, boundaries: Sequence[tuple[str, float, float]]) -> None:
    """Dashed lines at task starts and the task names above the axes; x spans the whole sequence."""
    ax.set_xlim(0.0, boundaries[-1][2])
    for i, (task, start, end) in enumerate(boundaries):
        if i > 0:
            ax.axvline(start, color="0.5", linestyle="--", linewidth=0.8)
        ax.text((start + end) / 2, 1.0, short_task(task), transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8, color="0.3")


def plot_band(
    ax: Any, curve: tuple[np.ndarray, np.ndarray, np.ndarray], color: str, label: str,
    boundaries: Sequence[tuple[str, float, float]],
) -> bool:
    """Mean line and +-std band of a (steps, mean, std) curve, broken at task starts so no line joins two tasks;
    False when the curve is empty."""
    steps, mean, std = curve
    if not steps.size:
        return False
    starts = np.array([start for _, start, _ in boundaries[1:]], dtype=float)
    at = np.searchsorted(steps, starts, side="right")
    steps, mean, std = (np.insert(x.astype(float), at, np.nan) for x in (steps, mean, std))
    steps[at + np.arange(len(at))] = starts
    ax.plot(steps, mean, color=color, label=label)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    return True


def end_of_task_means(group: GroupReport, score: str) -> np.ndarray:
    """Mean over every seed of the group of M[j, j] (success or return) per task j. [N]"""
    pick = (lambda m: m.success) if score == "success" else (lambda m: m.ret)
    stacked = np.concatenate([continual.end_of_task_scores(pick(run.matrix)) for run in group.runs], axis=-1)
    return continual.nanmean(stacked, axis=-1)


def plot_curves(groups: Sequence[GroupReport], path: Path) -> None:
    """Current-task evaluation success and return across the sequence, mean ± std over seeds, task boundaries
    dashed; a marker at each task's end is its end-of-task score M[j, j] (mean over seeds), whose average over tasks
    (the paper's metric, in the legend) is the report's headline."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=CURVES_SIZE, dpi=DPI, layout="constrained")
    boundaries = task_boundaries(groups[0].runs[0])
    ends = np.array([end for _, _, end in boundaries])
    for ax, score in zip(axes, ("success", "return")):
        key, title = f"eval_{score}", f"current-task evaluation {score}"
        plotted = False
        for i, g in enumerate(groups):
            label = f"{g.label} (avg. at task end {format_number(g.summary(f'average_{score}').mean)})"
            plotted |= plot_band(ax, group_curve(g.runs, key), f"C{i}", label, boundaries)
            marks = end_of_task_means(g, score)
            if np.isfinite(marks).any() and len(marks) == len(ends):
                ax.scatter(ends, marks, color=f"C{i}", marker="o", s=25, zorder=3)
        if not plotted:
            ax.text(0.5, 0.5, "no task with a success criterion", transform=ax.transAxes, ha="center", va="center")
        else:
            ax.legend(loc="best", fontsize=8)
        mark_tasks(ax, boundaries)
        ax.set_xlabel("total env steps")
        ax.set_ylabel(title)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def column_scaled(matrix: np.ndarray) -> np.ndarray:
    """Each column (evaluated task) mapped to [0, 1] by its own min and max (0.5 where they coincide): returns of
    different tasks have different scales."""
    low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
    span = np.where(high > low, high - low, 1.0)
    return np.where(high > low, (matrix - low) / span, 0.5)


def matrix_panel(ax: Any, matrix: np.ndarray, tasks: Sequence[str], title: str, bounded: bool) -> None:
    """One evaluation-matrix heatmap: rows = after training task i, columns = evaluated task j. Success is coloured
    on [0, 1] with a colour bar; returns per evaluated task (column) from its lowest to its highest value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        colour = matrix if bounded else column_scaled(matrix)
    image = ax.imshow(np.ma.masked_invalid(colour), cmap="viridis", vmin=0.0, vmax=1.0)
    if bounded:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    else:
        title += " (colour: per-task range)"
    labels = [short_task(t) for t in tasks]
    ax.set_xticks(range(len(tasks)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), labels, fontsize=7)
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("after training")
    ax.set_title(title, fontsize=9)
    if len(tasks) <= 12:
        for (i, j), value in np.ndenumerate(matrix):
            if math.isfinite(value):
                ax.text(j, i, format_number(value), ha="center", va="center", fontsize=7,
                        color="k" if colour[i, j] > 0.6 else "w")


def eval_matrix_figsize(n_groups: int, n_rows: int) -> tuple[float, float]:
    return (PANEL_SIZE[0] * n_groups, PANEL_SIZE[1] * n_rows)


def plot_eval_matrices(groups: Sequence[GroupReport], path: Path) -> None:
    """Mean over seeds of each algorithm's evaluation matrix: success (when any task has it) and return."""
    plt = pyplot()
    rows = [("success", lambda m: m.success, True), ("return", lambda m: m.ret, False)]
    rows = [r for r in rows if any(np.isfinite(r[1](run.matrix)).any() for g in groups for run in g.runs)]
    fig, axes = plt.subplots(len(rows), len(groups), figsize=eval_matrix_figsize(len(groups), len(rows)), dpi=DPI,
                             squeeze=False, layout="constrained")
    for r, (name, pick, bounded) in enumerate(rows):
        for c, g in enumerate(groups):
            stacked = np.concatenate([pick(run.matrix) for run in g.runs], axis=-1)
            matrix_panel(axes[r, c], continual.nanmean(stacked, axis=-1), g.runs[0].matrix.tasks,
                         f"{g.label}: {name}", bounded)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def has_keys(groups: Sequence[GroupReport], keys: Sequence[str]) -> bool:
    return any(all(row.get(k) is not None for k in keys) for g in groups for run in g.runs for row in run.rows)


def plot_ranks(groups: Sequence[GroupReport], path: Path) -> None:
    """eNTK and Gram effective ranks over training (mean ± std over seeds) and Gram vs eNTK per chunk and seed,
    with the Pearson correlation per algorithm: do the two track each other?"""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=RANKS_SIZE, dpi=DPI, layout="constrained")
    boundaries = task_boundaries(groups[0].runs[0])
    for i, g in enumerate(groups):
        for ax, key in ((axes[0], "entk_rank"), (axes[1], "gram_rank")):
            plot_band(ax, group_curve(g.runs, key), f"C{i}", g.label, boundaries)
        pairs = np.array([(row["entk_rank"], row["gram_rank"]) for run in g.runs for row in run.rows
                          if row.get("entk_rank") is not None and row.get("gram_rank") is not None])
        if len(pairs):
            r = np.corrcoef(pairs.T)[0, 1] if len(pairs) > 2 and pairs.std(axis=0).min() > 0 else float("nan")
            axes[2].scatter(pairs[:, 0], pairs[:, 1], s=10, color=f"C{i}", alpha=0.7,
                            label=f"{g.label} (Pearson r = {format_number(r)})")
    for ax, title in ((axes[0], "eNTK effective rank"), (axes[1], "Gram (A) effective rank")):
        mark_tasks(ax, boundaries)
        ax.set_xlabel("total env steps")
        ax.set_ylabel(title)
        ax.legend(loc="best", fontsize=8)
    axes[2].set_xlabel("eNTK effective rank")
    axes[2].set_ylabel("Gram (A) effective rank")
    axes[2].legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def load_keys(run: Run) -> list[str]:
    """routing_load_e0, e1, ... present in the run's metrics rows, in expert order."""
    keys = {k for row in run.rows for k in row if k.startswith("routing_load_e")}
    return sorted(keys, key=lambda k: int(k.removeprefix("routing_load_e")))


def plot_routing_load(groups: Sequence[GroupReport], path: Path) -> None:
    """Per algorithm with more than one routed expert: the fraction of routing weight per expert over training
    (mean over seeds), stacked."""
    plt = pyplot()
    routed = [g for g in groups if len(load_keys(g.runs[0])) > 1]
    fig, axes = plt.subplots(1, len(routed), figsize=eval_matrix_figsize(len(routed), 1), dpi=DPI, squeeze=False,
                             layout="constrained")
    for ax, g in zip(axes[0], routed):
        keys = load_keys(g.runs[0])
        curves = [group_curve(g.runs, k) for k in keys]
        ax.stackplot(curves[0][0], *[mean for _, mean, _ in curves], labels=[f"e{i}" for i in range(len(keys))])
        mark_tasks(ax, task_boundaries(g.runs[0]))
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("total env steps")
        ax.set_ylabel("routing load (fraction of weight)")
        ax.set_title(g.label, fontsize=9, pad=14)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# ---- driver -----------------------------------------------------------------------------------------------------

def make_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    references: Sequence[str | Path] = (),
    labels: Sequence[str | None] | None = None,
) -> list[Path]:
    """Load the runs (grouped by label, default config.yaml's algo), compute the metrics, write tables and plots
    into `out`; returns the files written."""
    if not run_dirs:
        raise ReportError("no run directories given")
    labels = list(labels) if labels is not None else [None] * len(run_dirs)
    runs = [part for path, label in zip(run_dirs, labels) for part in split_sweep(load_run(path, label))]
    reference_runs = [load_run(path) for path in references]
    reference_auc = reference_task_aucs(reference_runs) if reference_runs else None
    groups = [GroupReport(label, members, [s for run in members for s in seed_scores(run, reference_auc)])
              for label, members in group_runs(runs).items()]
    names = metric_names(bool(reference_runs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def emit(name: str, write: Callable[[Path], None]) -> None:
        write(out / name)
        written.append(out / name)

    tests = significance_rows(groups, names)
    emit("summary.md", lambda p: p.write_text(summary_markdown(groups, names, reference_runs, tests)
                                              + videos_markdown(runs, out)))
    emit("summary.csv", lambda p: write_csv(p, summary_csv_rows(groups, names)))
    if tests:
        emit("significance.csv", lambda p: write_csv(p, tests))
    emit("per_seed.csv", lambda p: write_csv(p, [
        {"algorithm": g.label, "run": s.run, "seed": s.seed, **{n: s.values[n] for n in names}}
        for g in groups for s in g.seeds]))
    emit("per_task.csv", lambda p: write_csv(p, [
        row for g in groups for row in per_task_rows(g, [n for n in PER_TASK_METRICS if n in names])]))
    emit("curves.png", lambda p: plot_curves(groups, p))
    emit("eval_matrix.png", lambda p: plot_eval_matrices(groups, p))
    if has_keys(groups, ["entk_rank", "gram_rank"]):
        emit("ranks.png", lambda p: plot_ranks(groups, p))
    if any(len(load_keys(g.runs[0])) > 1 for g in groups):
        emit("routing_load.png", lambda p: plot_routing_load(groups, p))
    return written
