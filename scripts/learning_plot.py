"""Plot learning curves on one figure, and print the final-return table in Markdown.

    python scripts/learning_plot.py docs/learning/brax_inverted_pendulum_ppo.json \\
        --out docs/learning/brax_inverted_pendulum.png

Inputs, in any mix:
- a JSON of scripts/learning_brax.py: one or both trainers (`ours`, `brax`), each with `steps` [P] and
  `eval_return` [P, seed];
- JSONs of `scripts/official_sphere.py run` (one seed each): the files of one task are stacked as seeds;
- a run directory of `purejaxsphere train` with one task (its metrics.jsonl eval rows, every seed).
A curve is the mean over seeds with a band of one standard deviation. The table gains a success column when every
input has success (the official trainer and our run directories do).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TRAINERS = ("ours", "brax")


OFFICIAL = "official sphere-rl/sphere"  # the `trainer` field of scripts/official_sphere.py's JSON


def brax_entries(record: dict) -> list[tuple[str, dict]]:
    """The trainers of one learning_brax.py record, labelled by trainer and algorithm."""
    return [(f"ours {record['algo']}" if trainer == "ours" else "brax ppo",  # Brax runs its dense PPO
             {**record[trainer], "task": record["task"]}) for trainer in TRAINERS if trainer in record]


def official_entry(records: list[dict]) -> tuple[str, dict]:
    """The official runs of one task (one seed per file) as one entry, seeds stacked; they must share eval steps."""
    steps = [e["env_steps"] for e in records[0]["evals"]]
    if any([e["env_steps"] for e in r["evals"]] != steps for r in records):
        raise ValueError("official runs evaluated at different steps: " + ", ".join(str(r["seed"]) for r in records))
    def column(key: str) -> list[list[float]]:  # [eval point][seed]
        return [[r["evals"][k][key] for r in records] for k in range(len(steps))]

    return "official SPHERE", {"task": f"humanoidbench/{records[0]['task']}", "steps": steps,
                               "eval_return": column("return"), "eval_success": column("success"),
                               "wall_seconds": sum(r["wall_seconds"] for r in records)}


def run_dir_entry(run_dir: Path) -> tuple[str, dict]:
    """The eval rows of a one-task `purejaxsphere train` run directory, every seed, as one entry."""
    import yaml

    algo = yaml.safe_load((run_dir / "config.yaml").read_text())["algo"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "eval_return" in r]
    tasks = sorted({r["task"] for r in rows})
    if len(tasks) != 1 or any("sweep" in key for r in rows for key in r):
        raise ValueError(f"{run_dir}: one task and no sweep expected, found tasks {tasks}")
    steps, seeds = sorted({r["env_steps"] for r in rows}), sorted({r["seed"] for r in rows})
    at = {(r["env_steps"], r["seed"]): r for r in rows}
    missing = [(s, seed) for s in steps for seed in seeds if (s, seed) not in at]
    if missing:
        raise ValueError(f"{run_dir}: no eval row for (env steps, seed) {missing[:3]}")
    def column(key: str) -> list[list[float]]:  # [eval point][seed]
        return [[at[s, seed][key] for seed in seeds] for s in steps]

    return f"ours {algo}", {"task": tasks[0], "steps": steps, "eval_return": column("eval_return"),
                            "eval_success": column("eval_success"),
                            "wall_seconds": max(r["elapsed_seconds"] for r in rows)}


def curves(paths: list[Path]) -> list[tuple[str, dict]]:
    """(label, entry) for every input: learning_brax.py JSONs, official JSONs (stacked per task), run directories."""
    out, official = [], {}
    for path in paths:
        if path.is_dir():
            out.append(run_dir_entry(path))
            continue
        record = json.loads(path.read_text())
        if record.get("trainer") == OFFICIAL:
            official.setdefault(record["task"], []).append(record)
        else:
            out.extend(brax_entries(record))
    return out + [official_entry(records) for records in official.values()]


def table(entries: list[tuple[str, dict]]) -> str:
    """Markdown: the final deterministic eval return and the mean of the last three (mean ± std over seeds), the final
    success when every entry has it, the env steps and the wall time (all seeds)."""
    with_success = all("eval_success" in entry for _, entry in entries)
    lines = ["| task | trainer | env steps | final eval return | mean of the last 3 evaluations |"
             + (" final success |" if with_success else "") + " seeds | wall time |",
             "|---|---|---:|---:|---:|" + ("---:|" if with_success else "") + "---:|---:|"]
    for label, entry in entries:
        returns = np.asarray(entry["eval_return"], float)
        final, late = returns[-1], returns[-3:].mean(axis=0)  # late: per seed, the mean of its last 3 evaluations
        success = np.asarray(entry.get("eval_success", [[np.nan]]), float)[-1]
        lines.append(f"| {entry['task']} | {label} | {entry['steps'][-1]:,} | {final.mean():.1f} ± {final.std():.1f} | "
                     f"{late.mean():.1f} ± {late.std():.1f} |"
                     + (f" {success.mean():.2f} ± {success.std():.2f} |" if with_success else "")
                     + f" {final.size} | {entry['wall_seconds']:.0f} s |")
    return "\n".join(lines)


def plot(entries: list[tuple[str, dict]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, entry in entries:
        steps = np.asarray(entry["steps"], float)
        returns = np.asarray(entry["eval_return"], float)
        mean, std = returns.mean(axis=1), returns.std(axis=1)
        ax.plot(steps, mean, label=f"{label} ({returns.shape[1]} seed{'s' if returns.shape[1] != 1 else ''})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel("deterministic eval return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+", help="learning_brax.py or official JSONs, or run directories")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    entries = curves(args.files)
    plot(entries, args.out, args.title or entries[0][1]["task"])
    print(table(entries))


if __name__ == "__main__":
    main()
