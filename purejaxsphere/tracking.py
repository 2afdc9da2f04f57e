"""Experiment trackers fed with the same per-seed, per-chunk metrics rows as metrics.jsonl: W&B and TensorBoard.

W&B: one W&B run per seed, grouped by the run directory's name (so W&B's group view gives mean and spread over
seeds), each with the resolved config plus its seed, metrics against `total_env_steps`, and at the end that seed's
scores from summary.json in the W&B run summary (`average_success`, the paper's metric, with
`final_policy_average_*` and `forgetting_*` beside it; purejaxsphere/summary.py) and the evaluation matrix, summary
and config files attached. Mode: `wandb.mode` (offline by default, files under
RUN_DIR/wandb; `wandb sync RUN_DIR/wandb/offline-run-*` uploads them later), overridden by the WANDB_MODE
environment variable when it is set. A tracker never fails or blocks a run: if W&B cannot start (no network, no
login, timeout), the run continues in offline mode, or without W&B, with a message.

Videos (`video=true`, purejaxsphere/render.py): each task's end-of-task MP4 goes to its seed's W&B run as
`video/<task>`.

TensorBoard (`tensorboard=true`): event files per seed under RUN_DIR/tensorboard/seed_<seed>.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from purejaxsphere.config import Config, to_dict

Warn = Callable[[str], None]


def scalar_items(row: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a metrics row (text fields such as the task name are left out)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def wandb_mode(cfg: Config) -> str:
    return os.environ.get("WANDB_MODE") or cfg.wandb.mode


def wandb_run_id(run_dir: Path, seed: int) -> str:
    """Stable per (run directory, seed): a resumed run keeps logging into the same W&B runs."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:10]
    return f"{run_dir.name[:40]}-{digest}-s{seed}".replace("/", "_")


class WandbTracker:
    """One W&B run per seed. `log(row)` routes a metrics row to its seed's run; `finish(files)` attaches files."""

    def __init__(self, cfg: Config, run_dir: Path, seeds: Sequence[int], warn: Warn = print):
        self.runs: dict[int, Any] = {}
        self.warn = warn
        mode = wandb_mode(cfg)
        if mode == "disabled" or not seeds:
            return
        try:
            import wandb
        except ImportError:  # pragma: no cover - wandb is a dependency
            warn("wandb is not installed: W&B logging off")
            return
        self._wandb = wandb
        config = to_dict(cfg)
        for seed in seeds:
            run = self._start(cfg, run_dir, seed, config, mode)
            if run is None and mode == "online":
                warn("W&B online failed to start (network or login?); logging offline instead: "
                     f"`wandb sync {run_dir / 'wandb'}/offline-run-*` uploads it later")
                mode = "offline"
                run = self._start(cfg, run_dir, seed, config, mode)
            if run is None:
                warn("W&B could not start even offline; the run goes on without W&B")
                self.finish([])
                return
            self.runs[seed] = run

    def _start(self, cfg: Config, run_dir: Path, seed: int, config: dict[str, Any], mode: str) -> Any | None:
        wandb = self._wandb
        try:
            run = wandb.init(
                project=cfg.wandb.project,
                entity=cfg.wandb.entity,
                group=run_dir.name,
                name=f"{run_dir.name}-seed{seed}",
                id=wandb_run_id(run_dir, seed),
                resume="allow",
                dir=str(run_dir),
                mode=mode,
                config={**config, "seed": seed},
                reinit="create_new",
                settings=wandb.Settings(init_timeout=60, silent=True, console="off"),
            )
            run.define_metric("total_env_steps")
            run.define_metric("*", step_metric="total_env_steps")
            return run
        except Exception as error:  # a tracker must never stop training
            self.warn(f"W&B ({mode}) could not start for seed {seed}: {type(error).__name__}: {error}")
            return None

    def log(self, row: dict[str, Any]) -> None:
        run = self.runs.get(row.get("seed"))
        if run is None:
            return
        try:
            run.log({**scalar_items(row), "task": row.get("task")})
        except Exception as error:
            self.warn(f"W&B log failed ({error}); W&B logging off for seed {row.get('seed')}")
            self.runs.pop(row.get("seed"), None)

    def log_video(self, seed: int, key: str, path: Path, step: int) -> None:
        """An MP4 into the seed's run as a wandb.Video at `step` total env steps."""
        run = self.runs.get(seed)
        if run is None:
            return
        try:
            run.log({key: self._wandb.Video(str(path), format="mp4"), "total_env_steps": step})
        except Exception as error:
            self.warn(f"W&B video log failed for seed {seed}: {error}")

    def finish(self, files: Sequence[Path], summaries: Mapping[int, dict[str, float]] | None = None) -> None:
        """Attach `files` and write `summaries[seed]` into each seed's W&B run summary, then close the runs."""
        for seed, run in list(self.runs.items()):
            try:
                run.summary.update((summaries or {}).get(seed, {}))
                for path in files:
                    if Path(path).exists():
                        run.save(str(path), base_path=str(Path(path).parent), policy="now")
                run.finish()
            except Exception as error:
                self.warn(f"W&B finish failed for seed {seed}: {error}")
        self.runs = {}


class TensorBoardTracker:
    """Scalars of every metrics row into RUN_DIR/tensorboard/seed_<seed> (step: total env steps of that seed)."""

    def __init__(self, run_dir: Path, seeds: Sequence[int]):
        from tensorboardX import SummaryWriter

        self.writers = {seed: SummaryWriter(str(run_dir / "tensorboard" / f"seed_{seed}")) for seed in seeds}

    def log(self, row: dict[str, Any]) -> None:
        writer = self.writers.get(row.get("seed"))
        if writer is None:
            return
        step = int(row["total_env_steps"])
        for key, value in scalar_items(row).items():
            writer.add_scalar(key, value, step)
        writer.flush()

    def log_video(self, seed: int, key: str, path: Path, step: int) -> None:
        """Not written: tensorboardX's add_video needs moviepy; the MP4 is in RUN_DIR/videos."""

    def finish(self, files: Sequence[Path], summaries: Mapping[int, dict[str, float]] | None = None) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class Trackers:
    """All trackers a config asks for, fed together."""

    def __init__(self, cfg: Config, run_dir: Path, seeds: Sequence[int], warn: Warn = print):
        self.trackers: list[Any] = [WandbTracker(cfg, run_dir, seeds, warn)]
        if cfg.tensorboard:
            self.trackers.append(TensorBoardTracker(run_dir, seeds))

    def log(self, row: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log(row)

    def log_video(self, seed: int, key: str, path: Path, step: int) -> None:
        for tracker in self.trackers:
            tracker.log_video(seed, key, path, step)

    def finish(self, files: Sequence[Path] = (), summaries: Mapping[int, dict[str, float]] | None = None) -> None:
        for tracker in self.trackers:
            tracker.finish(files, summaries)
