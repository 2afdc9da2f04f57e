"""`run(cfg)`: one training run with everything around it, the code path of `purejaxsphere train`.

It owns the run directory (config.yaml, metrics.jsonl, eval_matrix.json, summary.json), resume (`cfg.resume =
RUN_DIR` continues that run from its newest good checkpoint), the checkpoint cadence, the W&B / TensorBoard
trackers, videos, SIGINT/SIGTERM (stop after the current chunk, checkpointed) and the progress bar. The training
itself is `make_train(cfg)()` (purejaxsphere/driver.py); the CLI (purejaxsphere/cli.py) only parses arguments and
turns the outcome into exit codes and messages.

Importing this module does not import jax: `run` sets the XLA flags its physics needs first (`configure_xla`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.xla_cpu import ensure_workaround
from purejaxsphere.config import Config, ConfigError, absolute_path, read_run_config, resolve_paths

if TYPE_CHECKING:
    from purejaxsphere.checkpoint import Checkpoint
    from purejaxsphere.driver import RunResult, Trainer
    from purejaxsphere.logging import RunDirectory
    from purejaxsphere.tracking import Trackers


class RunFinished(Exception):
    """`cfg.resume` names a run that already finished (it has a summary.json): nothing to train."""


def configure_xla(cfg: Config) -> None:
    """Set the XLA:CPU workaround for MJX before jax initialises, only where contact-rich MJX physics runs (the rule
    lives in envs/xla_cpu.py, shared with `envs.make`); turn on the persistent compilation cache (cfg.compile_cache)
    unless JAX_COMPILATION_CACHE_DIR already names one."""
    ensure_workaround(cfg.tasks, cfg.physics)
    if cfg.compile_cache and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        import jax

        jax.config.update("jax_compilation_cache_dir", str(absolute_path(cfg.compile_cache)))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


def is_out_of_memory(error: BaseException) -> bool:
    """XLA's allocation failures (compile or run time), on any backend."""
    text = f"{type(error).__name__}: {error}"
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(error, MemoryError)


class StopFlag:
    """SIGINT/SIGTERM handler: the first signal asks training to stop after the current chunk (which is then
    checkpointed and logged); a second SIGINT interrupts at once. Installed only in the main thread (the only one
    Python lets handle signals)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        import signal

        if threading.current_thread() is threading.main_thread():
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


def run_config(cfg: Config) -> Config:
    """The config a run trains with, its paths absolute. With `resume=RUN_DIR`: RUN_DIR's config.yaml (a resumed run
    continues exactly the run it was; only `progress` comes from `cfg`), `resume` kept. Otherwise `cfg`, its run
    directory defaulted to <runs_root>/<time>_<benchmark>_<algo>. Idempotent."""
    from purejaxsphere.logging import default_run_dir

    if cfg.resume:
        try:
            saved = read_run_config(cfg.resume)
        except ConfigError as error:
            raise ConfigError(f"resume: {error}") from None
        return resolve_paths(dataclasses.replace(saved, resume=cfg.resume, progress=cfg.progress), cfg.resume)
    return resolve_paths(cfg, cfg.run_dir or default_run_dir(cfg))


@dataclass
class Outputs:
    """Where a run's results go: its directory, the trackers, the video recorder (video=true)."""

    writer: RunDirectory
    trackers: Trackers
    video: Callable[[Checkpoint], Any] | None
    primary: bool  # process 0: the one that writes checkpoints

    def log(self, row: dict[str, Any]) -> None:
        self.writer.log(row)
        self.trackers.log(row)


def restore(trainer: Trainer, run_dir: Path, say: Callable[[str], None]) -> Checkpoint | None:
    """The newest good checkpoint of `run_dir`, restored; None (the run starts over) when there is none."""
    from purejaxsphere import checkpoint as ckpt

    path = ckpt.latest_good_checkpoint(run_dir, warn=say)
    if path is None:
        say(f"no usable checkpoint in {run_dir}: starting the run over")
        return None
    # The carry's structure depends on the task (each task's env state is its own pytree).
    restored = ckpt.load_checkpoint(path, trainer.start_task(ckpt.read_position(path).task_index, None))
    say(f"resuming from checkpoint {path.name} (task {restored.position.task_index}, "
        f"{restored.position.chunks_done} chunks done)")
    return restored


def open_outputs(cfg: Config, trainer: Trainer, restored: Checkpoint | None, resuming: bool,
                 say: Callable[[str], None]) -> Outputs:
    """The run directory (a resumed run keeps its metrics rows up to the checkpoint), trackers and videos; only
    process 0 writes the run directory and trackers."""
    from purejaxsphere import distributed
    from purejaxsphere.logging import RunDirectory
    from purejaxsphere.tracking import Trackers

    run_dir, primary = Path(cfg.run_dir), distributed.is_main_process()
    done = (restored.position.task_index, restored.position.chunks_done) if restored else (0, 0)
    keep_row = (lambda row: (row["task_index"], row["chunk"]) < done) if resuming else None
    writer = RunDirectory(run_dir if primary else run_dir / f".process_{distributed.jax.process_index()}", cfg,
                          keep_row=keep_row)
    trackers = Trackers(cfg, run_dir, trainer.seeds if primary else [], warn=say)
    video = None
    if cfg.video and primary:
        from purejaxsphere.render import VideoRecorder

        video = VideoRecorder(trainer, run_dir, trackers, warn=say)
    return Outputs(writer, trackers, video, primary)


def checkpoint_hook(cfg: Config, outputs: Outputs, stop: Callable[[], bool]) -> Callable[[Checkpoint], None]:
    """After every chunk: a checkpoint every `checkpoint.every` chunks, at each task's end and when stopping
    (the last `checkpoint.keep_last` and every task's final one are kept); a video at each task's end."""
    from purejaxsphere import checkpoint as ckpt
    from purejaxsphere import distributed

    def on_chunk_end(checkpoint: Checkpoint) -> None:
        due = checkpoint.position.chunks_done % cfg.checkpoint.every == 0
        if cfg.checkpoint.enabled and (due or checkpoint.task_final or stop()):
            checkpoint.state = distributed.to_host(checkpoint.state)  # collective with several hosts
            if outputs.primary:
                ckpt.save_checkpoint(cfg.run_dir, checkpoint)
                ckpt.prune_checkpoints(cfg.run_dir, cfg.checkpoint.keep_last)
        if outputs.video is not None and checkpoint.task_final:
            outputs.video(checkpoint)

    return on_chunk_end


def train_recorded(cfg: Config, trainer: Trainer, outputs: Outputs, restored: Checkpoint | None,
                   say: Callable[[str], None]) -> RunResult:
    """Train (what is left of) the sequence with the progress bar, signal handling and checkpoint hook; the run
    directory's files are closed however it ends."""
    from tqdm import tqdm

    position = restored.position if restored else None
    done = position.task_index * trainer.plan.n_chunks + position.chunks_done if position else 0
    bar = tqdm(total=trainer.total_chunks, initial=done, unit="chunk", disable=not cfg.progress, dynamic_ncols=True)

    def progress(done: int, message: str) -> None:
        bar.update(done - bar.n)
        bar.set_postfix_str(message)

    try:
        with StopFlag() as stop:
            result = trainer(logger=outputs.log, progress=progress, resume=restored,
                             on_chunk_end=checkpoint_hook(cfg, outputs, stop), stop_requested=stop, warn=say)
    finally:
        bar.close()
        outputs.writer.close()
    return dataclasses.replace(result, stop_signal=stop.signum) if result.interrupted else result


def write_results(trainer: Trainer, result: RunResult, outputs: Outputs, show: Callable[[str], str]) -> None:
    """A finished run: eval_matrix.json and summary.json (summary.json last: it marks the run finished), the
    trackers closed with them, the summary printed."""
    from purejaxsphere.logging import json_ready
    from purejaxsphere.summary import eval_matrix_payload, format_run_summary, summary_payload, wandb_summaries

    run_dir = outputs.writer.path
    has_success = [task.has_success for task in trainer.tasks]
    outputs.writer.write_json("eval_matrix.json", eval_matrix_payload(result, has_success))
    summary = json_ready(summary_payload(result, has_success))
    outputs.writer.write_json("summary.json", summary)
    outputs.trackers.finish([run_dir / "eval_matrix.json", run_dir / "summary.json", run_dir / "config.yaml"],
                            wandb_summaries(summary))
    print(format_run_summary(summary, show(str(run_dir))))


def run(cfg: Config, *, show: Callable[[str], str] = str) -> RunResult:
    """Train `cfg` as `purejaxsphere train` does: into `cfg.run_dir` (default: a new one under cfg.runs_root), or
    continuing the run directory `cfg.resume` from its newest good checkpoint; returns the RunResult.

    A SIGINT/SIGTERM stops after the current chunk (checkpointed): the result has `interrupted=True` and
    `stop_signal`. Raises RunFinished when resuming a finished run, driver.NumericalFault when a member goes
    non-finite under fault.on_nan=stop (`last_checkpoint`: where a resume starts), ConfigError for a bad config,
    and XLA's error when memory runs out (checkpoints written so far are kept). `show(text)` rewrites the paths
    of messages (the CLI shows them as typed); messages go to stderr, the start line and summary to stdout.
    """
    cfg = run_config(cfg)
    resuming, run_dir = cfg.resume is not None, Path(cfg.run_dir)
    cfg = dataclasses.replace(cfg, resume=None)  # config.yaml records the run as first asked for
    say = lambda message: print(f"purejaxsphere: {show(message)}", file=sys.stderr, flush=True)  # noqa: E731
    if cfg.video:  # fail before training when no GL backend renders (RenderError); probed before jax starts
        from purejaxsphere.headless import select_backend

        select_backend()
    configure_xla(cfg)
    from purejaxsphere import distributed

    distributed.initialize(cfg.distributed)
    if resuming and (run_dir / "summary.json").exists():
        raise RunFinished(f"{run_dir} already finished; nothing to resume")
    from purejaxsphere import checkpoint as ckpt
    from purejaxsphere.driver import NumericalFault, make_train, plan_notes

    print(f"purejaxsphere: {cfg.algo} on {cfg.benchmark} ({len(cfg.tasks)} tasks), seeds {cfg.seeds}, "
          f"run dir {show(str(run_dir))}")
    trainer = make_train(cfg)
    for note in plan_notes(cfg, trainer.plan):
        say(f"note: {note}")
    restored = restore(trainer, run_dir, say) if resuming else None
    outputs = open_outputs(cfg, trainer, restored, resuming, say)
    try:
        result = train_recorded(cfg, trainer, outputs, restored, say)
    except NumericalFault as fault:
        outputs.trackers.finish()
        fault.last_checkpoint = ckpt.latest_good_checkpoint(run_dir, warn=say)
        raise
    except Exception as error:
        if is_out_of_memory(error):
            outputs.trackers.finish()
        raise
    if result.interrupted:
        outputs.trackers.finish()
    else:
        write_results(trainer, result, outputs, show)
    return result
