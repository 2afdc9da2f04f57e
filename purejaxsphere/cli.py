"""`purejaxsphere train [hydra overrides]` and friends.

Bad configurations exit with code 2 and one line naming the field and the allowed values, before jax is imported
(`--traceback` shows the Python traceback); docs/reliability.md lists every failure handled.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from purejaxsphere.config import Config, ConfigError, absolute_path, load_config, read_run_config
from purejaxsphere.run import RunFinished, configure_xla, is_out_of_memory, run, run_config


def out_of_memory_message(cfg: Config) -> str:
    seeds = cfg.seeds if isinstance(cfg.seeds, int) else len(cfg.seeds)
    return (f"out of memory with num_envs={cfg.num_envs} x {seeds} seeds (and minibatch {cfg.ppo.minibatch_size}): "
            f"try a smaller num_envs (e.g. num_envs={max(1, cfg.num_envs // 2)}), fewer seeds per run, or a smaller "
            "diagnostics.entk_states; checkpoints written so far are kept (resume=RUN_DIR)")


def resume_config(overrides: list[str]) -> Config:
    """`train resume=RUN_DIR [progress=...]`: the config `run` continues that run with (RUN_DIR's config.yaml);
    other overrides are refused: a resumed run continues exactly the run it was."""
    resume = [o for o in overrides if o.startswith("resume=")]
    others = [o for o in overrides if not o.startswith(("resume=", "progress="))]
    if others:
        raise ConfigError(
            f"resume: other overrides are not allowed when resuming (the run's config.yaml is used), got {others}")
    progress = [o.split("=", 1)[1].lower() in ("true", "1", "yes") for o in overrides if o.startswith("progress=")]
    cfg = run_config(Config(resume=resume[-1].split("=", 1)[1]))
    return dataclasses.replace(cfg, progress=progress[-1] if progress else read_run_config(cfg.run_dir).progress)


def as_typed(typed: dict[Path, Path]) -> Callable[[str], str]:
    """Messages show paths the way the user typed them: a function that writes each absolute path of `typed`
    (absolute -> as typed) back in its typed form."""
    pairs = sorted(((str(a), str(t)) for a, t in typed.items() if str(a) != str(t)), key=lambda p: -len(p[0]))

    def show(text: str) -> str:
        for absolute, shown in pairs:
            text = text.replace(absolute, shown)
        return text

    return show


def train_config(overrides: list[str]) -> tuple[Config, Path, bool]:
    """(config with absolute paths, the run directory as the user typed it or as defaulted, resuming?)."""
    from purejaxsphere.logging import default_run_dir

    resuming = any(o.startswith("resume=") and o != "resume=null" for o in overrides)
    if resuming:
        cfg = resume_config(overrides)
        return cfg, Path([o for o in overrides if o.startswith("resume=")][-1].split("=", 1)[1]), True
    cfg = load_config(*overrides)
    shown_run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    return run_config(dataclasses.replace(cfg, run_dir=str(shown_run_dir))), shown_run_dir, False


def dry_run(cfg: Config, shown_run_dir: Path, resuming: bool) -> int:
    """`train ... --dry-run`: build the tasks (nothing compiles, nothing is written) and print the plan."""
    from purejaxsphere.driver import format_plan
    from purejaxsphere.programs import make_tasks

    tasks = make_tasks(cfg)
    print(format_plan(cfg, tasks, shown_run_dir))
    if resuming:
        from purejaxsphere import checkpoint as ckpt

        path = ckpt.latest_good_checkpoint(cfg.run_dir, warn=lambda message: None)
        finished = (Path(cfg.run_dir) / "summary.json").exists()
        plan = path.name if path else "no usable checkpoint: starts over"
        print(f"  resume      {'finished: nothing to do' if finished else plan}")
    return 0


def failure_code(error: Exception, cfg: Config, say: Callable[[str], None]) -> int:
    """Exit code 3 (numerical fault) or 4 (out of memory) with its one-line message; anything else is raised."""
    from purejaxsphere.driver import NumericalFault

    if isinstance(error, NumericalFault):
        last = error.last_checkpoint
        kept = f"last good checkpoint {last.name}" if last else "no checkpoint yet"
        say(f"numerical fault: {error}; stopped ({kept}; fault.on_nan=drop_seed continues without the seed)")
        return 3
    if is_out_of_memory(error):
        say(out_of_memory_message(cfg))
        return 4
    raise error


def train(overrides: list[str], dry: bool = False) -> int:
    """`purejaxsphere train [overrides]`: `run.run(cfg)`, its outcome as an exit code and a one-line message."""
    cfg, shown_run_dir, resuming = train_config(overrides)
    if dry:
        return dry_run(cfg, shown_run_dir, resuming)
    show = as_typed({Path(cfg.run_dir): shown_run_dir})
    say = lambda message: print(f"purejaxsphere: {show(message)}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = run(cfg, show=show)
    except RunFinished as finished:
        print(f"purejaxsphere: {show(str(finished))}")
        return 0
    except Exception as error:  # numerical faults and out-of-memory become messages, others raise
        return failure_code(error, cfg, say)
    if result.interrupted:
        position = result.position
        say(f"stopped at task {position.task_index}, {position.chunks_done} chunks done; "
            f"resume with: purejaxsphere train resume={shown_run_dir}")
        return 128 + (result.stop_signal or 0)
    return 0


def report(run_args: Sequence[str], out: str, references: Sequence[str]) -> int:
    from purejaxsphere.report import ReportError, make_report, split_label

    labelled = [split_label(arg) for arg in run_args]
    typed = [path for _, path in labelled] + [Path(ref) for ref in references] + [Path(out)]
    show = as_typed({absolute_path(path): path for path in typed})
    try:
        written = make_report([absolute_path(path) for _, path in labelled], absolute_path(out),
                              [absolute_path(ref) for ref in references], [label for label, _ in labelled])
    except ReportError as error:
        raise ReportError(show(str(error))) from None
    print(f"purejaxsphere report: wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """`purejaxsphere eval RUN_DIR ...`: print the task x seed table, write the JSON (purejaxsphere/evaluate.py)."""

    try:  # set the XLA:CPU workaround before jax initialises when the evaluation runs MJX physics
        cfg = read_run_config(args.run_dir)
        configure_xla(dataclasses.replace(cfg, physics=args.backend if args.backend in ("mjx", "cpu") else cfg.physics))
    except ConfigError:
        pass  # reported by run_eval with the other run-directory errors
    from purejaxsphere.evaluate import EvalError, format_table, run_eval

    run_dir, out = absolute_path(args.run_dir), absolute_path(args.out) if args.out else None
    show = as_typed({run_dir: Path(args.run_dir), **({out: Path(args.out)} if out else {})})
    say = lambda message: print(f"purejaxsphere: {show(message)}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        payload, path = run_eval(run_dir, args.backend, args.episodes, args.checkpoint, args.tasks, out, warn=say)
    except EvalError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: eval: {show(str(error))}", file=sys.stderr)
        return 2
    print(show(format_table(payload)))
    print(f"wrote {show(str(path))}")
    return 0


def add_render_parser(commands: Any) -> None:
    render = commands.add_parser("render", help="videos of a trained run's deterministic policy (MP4, headless)")
    render.add_argument("run_dir", help="a run directory written by `purejaxsphere train`")
    render.add_argument("--checkpoint", help="checkpoint name, e.g. t000_c00002 (default: the newest that verifies)")
    render.add_argument("--tasks", help="task indices or names of the run's sequence, e.g. 0,2 (default: all)")
    render.add_argument("--seeds", help="seeds, e.g. 0,1 (default: the run's first seed not dropped)")
    render.add_argument("--episodes", type=int, default=1, help="episodes per video, back to back (default 1)")
    render.add_argument("--width", type=int, default=320, help="frame width in pixels, even (default 320)")
    render.add_argument("--height", type=int, default=240, help="frame height in pixels, even (default 240)")
    render.add_argument("--fps", type=float, help="frames per second (default: real time, 1 / the task's dt)")
    render.add_argument("--out", help="output folder (default: RUN_DIR/videos)")
    render.add_argument("--gif", action="store_true", help="also write a GIF beside each MP4")


def render(args: argparse.Namespace) -> int:
    """`purejaxsphere render RUN_DIR ...` (purejaxsphere/render.py): one MP4 per task and seed."""
    from purejaxsphere.headless import RenderError, select_backend

    def fail(error: Exception) -> int:
        if args.traceback:
            raise error
        print(f"purejaxsphere: render: {' '.join(str(error).split())}", file=sys.stderr)
        return 2

    try:  # the XLA:CPU workaround before jax initialises, as for eval (the rollout of Brax tasks runs MJX)
        configure_xla(read_run_config(args.run_dir))
    except ConfigError:
        pass  # reported by run_render with the other run-directory errors
    try:
        select_backend()  # probed in fresh processes, before this one imports jax
    except RenderError as error:
        return fail(error)
    from purejaxsphere.evaluate import EvalError
    from purejaxsphere.render import run_render

    run_dir, out = absolute_path(args.run_dir), absolute_path(args.out) if args.out else None
    show = as_typed({run_dir: Path(args.run_dir), **({out: Path(args.out)} if out else {})})
    say = lambda message: print(f"purejaxsphere: {show(message)}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        videos = run_render(run_dir, args.checkpoint, args.tasks, args.seeds, args.episodes, args.width,
                            args.height, args.fps, out, args.gif, warn=say)
    except (RenderError, EvalError) as error:
        return fail(type(error)(show(str(error))))
    for video in videos:
        print(show(f"wrote {video.describe()}" + (f" and {video.gif}" if video.gif else "")))
    return 0


# ------------------------------------------------------------------------------------------ bench (purejaxsphere.bench)
# `--quick`: a tiny shape that measures everything in about a minute on a CPU (CI). The H1 on C MuJoCo compiles in
# seconds; an MJX task's step compiles in every measured program (raw, rollout, chunk, Brax), several times longer.
BENCH_QUICK = [
    "benchmark=smoke", "tasks=[humanoidbench/h1_stand]", "physics=cpu", "num_envs=4", "episode_length=20",
    "ppo.n_steps=8", "ppo.minibatch_size=16", "ppo.update_epochs=1", "network.hidden_sizes=[16]",
    "network.gate_hidden_sizes=[16]", "network.critic_hidden_sizes=[16]", "network.n_experts=2",
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
        out = absolute_path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purejaxsphere", description=__doc__.splitlines()[0])
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a task sequence (Hydra overrides: key=value)")
    train_parser.add_argument("overrides", nargs="*", help="e.g. seeds=5 algo=moe_topk_sphere benchmark=smoke")
    train_parser.add_argument("--dry-run", action="store_true",
                              help="validate the config, build the tasks and print the plan; compile and write nothing")
    report_parser = commands.add_parser(
        "report", help="tables and plots comparing runs, grouped by algorithm (config.yaml's algo or LABEL=RUN_DIR)"
    )
    report_parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or LABEL=RUN_DIR")
    report_parser.add_argument("--out", default="report", help="output folder (default: ./report)")
    report_parser.add_argument(
        "--reference", nargs="+", action="extend", default=[], metavar="RL_RUN_DIR",
        help="runs trained with protocol=rl on the same tasks: single-task references for forward transfer",
    )
    eval_parser = commands.add_parser("eval", help="evaluate a trained run's policy on its tasks")
    eval_parser.add_argument("run_dir", help="a run directory written by `purejaxsphere train`")
    eval_parser.add_argument("--backend", help="mjx | cpu | metaworld (the real package; MetaWorld tasks only); "
                                               "default: the run's physics")
    eval_parser.add_argument("--episodes", type=int,
                             help="episodes per task and seed (default: the run's eval.episodes)")
    eval_parser.add_argument("--checkpoint",
                             help="checkpoint name, e.g. t000_c00002 (default: the newest that verifies)")
    eval_parser.add_argument("--tasks", help="task indices in the run's sequence, e.g. 0,2 (default: all)")
    eval_parser.add_argument("--out", help="JSON output file (default: RUN_DIR/eval_<backend>.json)")
    add_render_parser(commands)
    add_bench_parser(commands)
    args = parser.parse_args(argv)
    from purejaxsphere.headless import RenderError
    from purejaxsphere.report import ReportError

    try:
        if args.command == "train":
            return train(args.overrides, dry=args.dry_run)
        if args.command == "report":
            return report(args.runs, args.out, args.reference)
        if args.command == "eval":
            return evaluate(args)
        if args.command == "render":
            return render(args)
        if args.command == "bench":
            return bench(args, list(sys.argv[1:] if argv is None else argv))
    except ReportError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: report error: {error}", file=sys.stderr)
        return 2
    except RenderError as error:  # video=true without a GL backend
        if args.traceback:
            raise
        print(f"purejaxsphere: render error: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: config error: {' '.join(str(error).split())}", file=sys.stderr)  # always one line
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
