"""Plot learning-curve JSON files of scripts/learning_brax.py on one figure, and print the final-return table in
Markdown.

    python scripts/learning_plot.py docs/learning/brax_inverted_pendulum_ppo.json \\
        --out docs/learning/brax_inverted_pendulum.png

Each file holds one or both trainers (`ours`, `brax`), each with `steps` [P] and `eval_return` [P, seed].
A curve is the mean over seeds with a band of one standard deviation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TRAINERS = ("ours", "brax")


def curves(paths: list[Path]) -> list[tuple[str, dict]]:
    """(label, trainer record) for every trainer in every file, labelled by trainer and algorithm."""
    out = []
    for path in paths:
        record = json.loads(path.read_text())
        for trainer in TRAINERS:
            if trainer in record:
                label = f"ours {record['algo']}" if trainer == "ours" else "brax ppo"  # Brax runs its dense PPO
                out.append((label, {**record[trainer], "task": record["task"]}))
    return out


def table(entries: list[tuple[str, dict]]) -> str:
    """Markdown: the final deterministic eval return and the mean of the last three (mean ± std over seeds), the env
    steps and the wall time."""
    lines = ["| task | trainer | env steps | final eval return | mean of the last 3 evaluations | seeds | wall time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, entry in entries:
        returns = np.asarray(entry["eval_return"], float)
        final, late = returns[-1], returns[-3:].mean(axis=0)  # late: per seed, the mean of its last 3 evaluations
        lines.append(f"| {entry['task']} | {label} | {entry['steps'][-1]:,} | {final.mean():.1f} ± {final.std():.1f} | "
                     f"{late.mean():.1f} ± {late.std():.1f} | {final.size} | {entry['wall_seconds']:.0f} s |")
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
        ax.plot(steps, mean, label=f"{label} ({returns.shape[1]} seeds)")
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
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    entries = curves(args.files)
    plot(entries, args.out, args.title or entries[0][1]["task"])
    print(table(entries))


if __name__ == "__main__":
    main()
