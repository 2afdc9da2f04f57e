"""`purejaxsphere train [hydra overrides]` and friends.

Bad configurations exit with code 2 and one line naming the field and the allowed values, before jax is imported
(`--traceback` shows the Python traceback); docs/reliability.md lists every failure handled.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from purejaxsphere.config import XLA_CPU_WORKAROUND_FLAG, Config, ConfigError, load_config, needs_xla_cpu_workaround


def configure_xla(cfg: Config) -> None:
    """Set the XLA:CPU workaround for MJX before jax initialises, only where contact-rich MJX physics runs; turn on
    the persistent compilation cache (cfg.compile_cache) unless JAX_COMPILATION_CACHE_DIR already names one."""
    if needs_xla_cpu_workaround(cfg):
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_use_fusion_emitters" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_WORKAROUND_FLAG}".strip()
    if cfg.compile_cache and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cfg.compile_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


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
        **sweep_payload(result),
        "return": result.eval_return,
        "success": success,
    }


def sweep_payload(result: Any) -> dict[str, Any]:
    """With a sweep, the members of the seed axis are (value, seed) pairs: name the value of each."""
    if not any(v is not None for v in result.sweep_values):
        return {}
    return {"sweep_key": result.sweep_key, "sweep_values": result.sweep_values}


def summary_payload(result: Any, has_success: Sequence[bool]) -> dict[str, Any]:
    """Final scores: after the last task, mean over all tasks of the sequence, per seed (dropped seeds: null and
    left out of the means)."""
    import numpy as np

    final_return = result.eval_return[-1]  # [task, seed]
    live = np.array([m not in result.dropped for m in range(len(result.seeds))])
    out: dict[str, Any] = {
        "seeds": result.seeds,
        "dropped_seeds": result.dropped_seeds,
        **sweep_payload(result),
        "final_average_return": np.mean(final_return, axis=0),
        "final_average_return_mean": float(np.mean(final_return[:, live])) if live.any() else None,
    }
    if any(has_success):
        final_success = result.eval_success[-1][np.asarray(has_success)]
        out["final_average_success"] = np.mean(final_success, axis=0)
        out["final_average_success_mean"] = float(np.mean(final_success[:, live])) if live.any() else None
    return out


def is_out_of_memory(error: BaseException) -> bool:
    """XLA's allocation failures (compile or run time), on any backend."""
    text = f"{type(error).__name__}: {error}"
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(error, MemoryError)


def out_of_memory_message(cfg: Config) -> str:
    seeds = cfg.seeds if isinstance(cfg.seeds, int) else len(cfg.seeds)
    return (f"out of memory with num_envs={cfg.num_envs} x {seeds} seeds (and minibatch {cfg.ppo.minibatch_size}): "
            f"try a smaller num_envs (e.g. num_envs={max(1, cfg.num_envs // 2)}), fewer seeds per run, or a smaller "
            "diagnostics.entk_states; checkpoints written so far are kept (resume=RUN_DIR)")


class StopFlag:
    """SIGINT/SIGTERM handler: the first signal asks training to stop after the current chunk (which is then
    checkpointed and logged); a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        import signal

        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\npurejaxsphere: {signal.Signals(signum).name}: stopping after the current chunk "
              "(checkpoint and logs are written first)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def __call__(self) -> bool:
        return self.signum is not None


def resume_config(overrides: list[str]) -> tuple[Config, Path]:
    """The config of the run directory named by `resume=RUN_DIR` (other overrides but `progress` are refused:
    a resumed run continues exactly the run it was)."""
    from purejaxsphere.config import read_run_config

    resume = [o for o in overrides if o.startswith("resume=")]
    others = [o for o in overrides if not o.startswith(("resume=", "progress="))]
    if others:
        raise ConfigError(f"resume: other overrides are not allowed when resuming (the run's config.yaml is used), got {others}")
    run_dir = Path(resume[-1].split("=", 1)[1])
    try:
        cfg = read_run_config(run_dir)
    except ConfigError as error:
        raise ConfigError(f"resume: {error}") from None
    cfg.resume, cfg.run_dir = None, str(run_dir)
    for override in overrides:
        if override.startswith("progress="):
            cfg.progress = override.split("=", 1)[1].lower() in ("true", "1", "yes")
    return cfg, run_dir


def train(overrides: list[str]) -> int:
    if any(o.startswith("resume=") and o != "resume=null" for o in overrides):
        cfg, run_dir = resume_config(overrides)
        resuming = True
    else:
        cfg = load_config(*overrides)
        run_dir = Path(cfg.run_dir) if cfg.run_dir else None
        resuming = False
    if cfg.video:  # fail before training when no GL backend renders (RenderError: exit 2); probed before jax starts
        from purejaxsphere.headless import select_backend

        select_backend()
    configure_xla(cfg)
    from tqdm import tqdm

    from purejaxsphere import distributed

    distributed.initialize(cfg.distributed)
    primary = distributed.is_main_process()  # only process 0 writes the run directory and trackers

    from purejaxsphere import checkpoint as ckpt
    from purejaxsphere.logging import RunDirectory, default_run_dir
    from purejaxsphere.tracking import Trackers
    from purejaxsphere.train import NumericalFault, make_train

    run_dir = run_dir or default_run_dir(cfg)
    if resuming and (run_dir / "summary.json").exists():
        print(f"purejaxsphere: {run_dir} already finished; nothing to resume")
        return 0
    say = lambda message: print(f"purejaxsphere: {message}", file=sys.stderr, flush=True)  # noqa: E731
    print(f"purejaxsphere: {cfg.algo} on {cfg.benchmark} ({len(cfg.tasks)} tasks), seeds {cfg.seeds}, run dir {run_dir}")
    trainer = make_train(cfg)
    restored = None
    if resuming:
        path = ckpt.latest_good_checkpoint(run_dir, warn=say)
        if path is None:
            say(f"no usable checkpoint in {run_dir}: starting the run over")
        else:
            # The carry's structure depends on the task (each task's env state is its own pytree).
            template = trainer.start_task(ckpt.read_position(path).task_index, None)
            restored = ckpt.load_checkpoint(path, template)
            say(f"resuming from checkpoint {path.name} (task {restored.position.task_index}, "
                f"{restored.position.chunks_done} chunks done)")
    position = restored.position if restored else ckpt.Position(0, 0)
    keep_row = lambda row: (row["task_index"], row["chunk"]) < (position.task_index, position.chunks_done)  # noqa: E731
    writer = RunDirectory(run_dir if primary else run_dir / f".process_{distributed.jax.process_index()}", cfg,
                          keep_row=keep_row if resuming else None)
    trackers = Trackers(cfg, run_dir, trainer.seeds if primary else [], warn=say)
    video = None
    if cfg.video and primary:
        from purejaxsphere.render import VideoRecorder

        video = VideoRecorder(trainer, run_dir, trackers, warn=say)

    def log(row: dict[str, Any]) -> None:
        writer.log(row)
        trackers.log(row)
    done = position.task_index * trainer.plan.n_chunks + position.chunks_done
    bar = tqdm(total=trainer.total_chunks, initial=done, unit="chunk", disable=not cfg.progress, dynamic_ncols=True)

    def progress(done: int, message: str) -> None:
        bar.update(done - bar.n)
        bar.set_postfix_str(message)

    def on_chunk_end(checkpoint: ckpt.Checkpoint) -> None:
        due = checkpoint.position.chunks_done % cfg.checkpoint.every == 0
        if cfg.checkpoint.enabled and (due or checkpoint.task_final or stop()):
            checkpoint.state = distributed.to_host(checkpoint.state)  # collective with several hosts
            if primary:
                ckpt.save_checkpoint(run_dir, checkpoint)
                ckpt.prune_checkpoints(run_dir, cfg.checkpoint.keep_last)
        if video is not None and checkpoint.task_final:
            video(checkpoint)

    resume_hint = f"resume with: purejaxsphere train resume={run_dir}"
    try:
        with StopFlag() as stop:
            result = trainer(logger=log, progress=progress, resume=restored, on_chunk_end=on_chunk_end,
                             stop_requested=stop, warn=say)
    except NumericalFault as fault:
        trackers.finish()
        last = ckpt.latest_good_checkpoint(run_dir, warn=say)
        kept = f"last good checkpoint {last.name}" if last else "no checkpoint yet"
        say(f"numerical fault: {fault}; stopped ({kept}; fault.on_nan=drop_seed continues without the seed)")
        return 3
    except Exception as error:  # noqa: BLE001 - only out-of-memory is turned into a message
        if not is_out_of_memory(error):
            raise
        trackers.finish()
        say(out_of_memory_message(cfg))
        return 4
    finally:
        bar.close()
        writer.close()
    if result.interrupted:
        position = result.position
        trackers.finish()
        say(f"stopped at task {position.task_index}, {position.chunks_done} chunks done; {resume_hint}")
        return 128 + (stop.signum or 0)
    has_success = [task.has_success for task in trainer.tasks]
    writer.write_json("eval_matrix.json", eval_matrix_payload(result, has_success))
    summary = summary_payload(result, has_success)
    writer.write_json("summary.json", summary)
    trackers.finish([run_dir / "eval_matrix.json", run_dir / "summary.json", run_dir / "config.yaml"])
    line = f"done: final average return {summary['final_average_return_mean']}"
    if "final_average_success_mean" in summary:
        line += f", success {summary['final_average_success_mean']}"
    print(f"{line}; wrote {run_dir}")
    return 0


def report(run_args: Sequence[str], out: str, references: Sequence[str]) -> int:
    from purejaxsphere.report import make_report, split_label

    labelled = [split_label(arg) for arg in run_args]
    written = make_report([path for _, path in labelled], out, references, [label for label, _ in labelled])
    print(f"purejaxsphere report: wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """`purejaxsphere eval RUN_DIR ...`: print the task x seed table, write the JSON (purejaxsphere/evaluate.py)."""
    import dataclasses

    from purejaxsphere.config import read_run_config

    try:  # set the XLA:CPU workaround before jax initialises when the evaluation runs MJX physics
        cfg = read_run_config(args.run_dir)
        configure_xla(dataclasses.replace(cfg, physics=args.backend if args.backend in ("mjx", "cpu") else cfg.physics))
    except ConfigError:
        pass  # reported by run_eval with the other run-directory errors
    from purejaxsphere.evaluate import EvalError, format_table, run_eval

    say = lambda message: print(f"purejaxsphere: {message}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        payload, path = run_eval(args.run_dir, args.backend, args.episodes, args.checkpoint, args.tasks, args.out,
                                 warn=say)
    except EvalError as error:
        if args.traceback:
            raise
        print(f"purejaxsphere: eval: {error}", file=sys.stderr)
        return 2
    print(format_table(payload))
    print(f"wrote {path}")
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
    from purejaxsphere.config import read_run_config
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

    say = lambda message: print(f"purejaxsphere: {message}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        videos = run_render(args.run_dir, args.checkpoint, args.tasks, args.seeds, args.episodes, args.width,
                            args.height, args.fps, args.out, args.gif, warn=say)
    except (RenderError, EvalError) as error:
        return fail(error)
    for video in videos:
        print(f"wrote {video.describe()}" + (f" and {video.gif}" if video.gif else ""))
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
    eval_parser.add_argument("--episodes", type=int, help="episodes per task and seed (default: the run's eval.episodes)")
    eval_parser.add_argument("--checkpoint", help="checkpoint name, e.g. t000_c00002 (default: the newest that verifies)")
    eval_parser.add_argument("--tasks", help="task indices in the run's sequence, e.g. 0,2 (default: all)")
    eval_parser.add_argument("--out", help="JSON output file (default: RUN_DIR/eval_<backend>.json)")
    add_render_parser(commands)
    add_bench_parser(commands)
    args = parser.parse_args(argv)
    from purejaxsphere.headless import RenderError
    from purejaxsphere.report import ReportError

    try:
        if args.command == "train":
            return train(args.overrides)
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
