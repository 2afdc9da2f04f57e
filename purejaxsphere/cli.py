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


# ------------------------------------------------------------------------------------------- bench (purejaxsphere.bench)
# `--quick`: a tiny shape that measures everything in about a minute on a CPU (CI). The H1 on C MuJoCo compiles in
# seconds; an MJX task's step compiles in every measured program (raw, rollout, chunk, Brax: ~4x longer in all).
BENCH_QUICK = [
    "benchmark=smoke", "tasks=[humanoidbench/h1_stand]", "physics=cpu", "num_envs=4", "episode_length=20", "ppo.n_steps=8",
    "ppo.minibatch_size=16", "ppo.update_epochs=1", "network.hidden_sizes=[16]", "network.gate_hidden_sizes=[16]",
    "network.critic_hidden_sizes=[16]", "network.n_experts=2",
]


def add_bench_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="env, trainer and Brax PPO steps/s on one task and batch shape")
    bench.add_argument("--task", help="task name (default: the config's first task)")
    bench.add_argument("--num-envs", type=int, help="envs per seed (default: the config's num_envs)")
    bench.add_argument("--seeds", type=int, default=1, help="seeds (a vmap axis, as in training; default 1)")
    bench.add_argument("--quick", action="store_true", help="tiny configuration for CI (valid JSON, no real figures)")
    bench.add_argument("--out", help="write the JSON result here")
    bench.add_argument("--min-seconds", type=float, help="time each program at least this long (default 10; quick 0.3)")
    bench.add_argument("--updates-per-chunk", type=int, help="PPO updates per chunk program call (default 2; quick 1)")
    bench.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. benchmark=humanoidbench_h1 physics=cpu")


def bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run `purejaxsphere bench`; `argv` (the command line after the program name) is recorded in the JSON."""
    import json

    overrides = (BENCH_QUICK if args.quick else []) + list(args.overrides) + [f"seeds={args.seeds}"]
    overrides += [f"tasks=[{args.task}]"] if args.task else []
    overrides += [f"num_envs={args.num_envs}"] if args.num_envs else []
    cfg = load_config(*overrides)
    cfg.tasks = cfg.tasks[:1]
    configure_xla(cfg)
    from purejaxsphere.bench import format_table, run_bench

    result = run_bench(
        cfg,
        min_seconds=args.min_seconds if args.min_seconds is not None else (0.3 if args.quick else 10.0),
        updates_per_chunk=args.updates_per_chunk or (1 if args.quick else 2),
        brax_epochs=1 if args.quick else 2,
        wrapped=not args.quick,
    )
    result["command"] = "purejaxsphere " + " ".join(argv)
    print(format_table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purejaxsphere", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a task sequence (Hydra overrides: key=value)")
    train_parser.add_argument("overrides", nargs="*", help="e.g. seeds=5 algo=moe_topk_sphere benchmark=smoke")
    add_bench_parser(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train(args.overrides)
        if args.command == "bench":
            return bench(args, list(sys.argv[1:] if argv is None else argv))
    except ConfigError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: config error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
