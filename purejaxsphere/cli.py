"""`purejaxsphere train [hydra overrides]` and friends.

Bad configurations exit with code 2 and one line naming the field (`--traceback` shows the Python traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from purejaxsphere.config import XLA_CPU_WORKAROUND_FLAG, Config, ConfigError, load_config, needs_xla_cpu_workaround


def configure_xla(cfg: Config) -> None:
    """Set the XLA:CPU workaround for MJX before jax initialises, only where contact-rich MJX physics runs."""
    if needs_xla_cpu_workaround(cfg):
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_use_fusion_emitters" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_WORKAROUND_FLAG}".strip()


def eval_matrix_payload(result: Any, has_success: Sequence[bool]) -> dict[str, Any]:
    """The evaluation matrix as JSON: entry [i][j][s] = seed s's score on task j after training task i."""
    success = result.eval_success.copy()
    for j, flag in enumerate(has_success):
        if not flag:
            success[:, j] = float("nan")  # tasks without a success criterion (Brax): null in the JSON
    return {
        "tasks": result.tasks,
        "seeds": result.seeds,
        "layout": "[trained task i][evaluated task j][seed]; null where j > i or undefined",
        "return": result.eval_return,
        "success": success,
    }


def summary_payload(result: Any, has_success: Sequence[bool]) -> dict[str, Any]:
    """Final scores: after the last task, mean over all tasks of the sequence, per seed."""
    import numpy as np

    final_return = result.eval_return[-1]  # [task, seed]
    out: dict[str, Any] = {
        "seeds": result.seeds,
        "final_average_return": np.mean(final_return, axis=0),
        "final_average_return_mean": float(np.mean(final_return)),
    }
    if any(has_success):
        final_success = result.eval_success[-1][np.asarray(has_success)]
        out["final_average_success"] = np.mean(final_success, axis=0)
        out["final_average_success_mean"] = float(np.mean(final_success))
    return out


def train(overrides: list[str]) -> int:
    cfg = load_config(*overrides)
    configure_xla(cfg)
    from tqdm import tqdm

    from purejaxsphere.logging import RunDirectory, default_run_dir
    from purejaxsphere.train import make_train

    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    print(f"purejaxsphere: {cfg.algo} on {cfg.benchmark} ({len(cfg.tasks)} tasks), seeds {cfg.seeds}, run dir {run_dir}")
    trainer = make_train(cfg)
    writer = RunDirectory(run_dir, cfg)
    bar = tqdm(total=trainer.total_chunks, unit="chunk", disable=not cfg.progress, dynamic_ncols=True)

    def progress(done: int, message: str) -> None:
        bar.update(done - bar.n)
        bar.set_postfix_str(message)

    try:
        result = trainer(logger=writer.log, progress=progress)
    finally:
        bar.close()
        writer.close()
    has_success = [task.has_success for task in trainer.tasks]
    writer.write_json("eval_matrix.json", eval_matrix_payload(result, has_success))
    summary = summary_payload(result, has_success)
    writer.write_json("summary.json", summary)
    line = f"done: final average return {summary['final_average_return_mean']:.2f}"
    if "final_average_success_mean" in summary:
        line += f", success {summary['final_average_success_mean']:.2f}"
    print(f"{line}; wrote {run_dir}")
    return 0


def report(run_args: Sequence[str], out: str, references: Sequence[str]) -> int:
    from purejaxsphere.report import make_report, split_label

    labelled = [split_label(arg) for arg in run_args]
    written = make_report([path for _, path in labelled], out, references, [label for label, _ in labelled])
    print(f"purejaxsphere report: wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purejaxsphere", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a task sequence (Hydra overrides: key=value)")
    train_parser.add_argument("overrides", nargs="*", help="e.g. seeds=5 algo=moe_topk_sphere benchmark=smoke")
    report_parser = commands.add_parser(
        "report", help="tables and plots comparing runs, grouped by algorithm (config.yaml's algo or LABEL=RUN_DIR)"
    )
    report_parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or LABEL=RUN_DIR")
    report_parser.add_argument("--out", default="report", help="output folder (default: ./report)")
    report_parser.add_argument(
        "--reference", nargs="+", action="extend", default=[], metavar="RL_RUN_DIR",
        help="runs trained with protocol=rl on the same tasks: single-task references for forward transfer",
    )
    args = parser.parse_args(argv)
    from purejaxsphere.report import ReportError

    try:
        if args.command == "train":
            return train(args.overrides)
        if args.command == "report":
            return report(args.runs, args.out, args.reference)
    except ReportError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: report error: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: config error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
