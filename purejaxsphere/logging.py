"""The run directory: resolved config, per-chunk metrics (JSON lines), evaluation matrix, summary.

Files other than the append-only metrics log are written atomically (temporary file + rename), so a crash never
leaves a half-written config or matrix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from purejaxsphere.config import Config, to_dict


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_ready(value: Any) -> Any:
    """NaN/inf -> None and NumPy scalars/arrays -> Python, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.runs_root) / f"{stamp}_{cfg.benchmark}_{cfg.algo}"


class RunDirectory:
    """Writes one run's files; `log(row)` appends a metrics line and flushes it to disk."""

    def __init__(self, path: str | Path, cfg: Config, keep_row: Callable[[dict[str, Any]], bool] | None = None):
        """`keep_row`: when resuming, the metrics rows to keep (those up to the checkpoint); the rest are dropped,
        so a resumed run's metrics.jsonl holds each chunk once."""
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        metrics = self.path / "metrics.jsonl"
        if keep_row is not None and metrics.exists():
            kept = [row for row in read_metrics(self.path) if keep_row(row)]
            atomic_write_text(metrics, "".join(json.dumps(row, allow_nan=False) + "\n" for row in kept))
        self._metrics = open(metrics, "a")

    def log(self, row: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(json_ready(row), allow_nan=False) + "\n")
        self._metrics.flush()

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        atomic_write_text(self.path / name, json.dumps(json_ready(payload), indent=1, allow_nan=False) + "\n")

    def close(self) -> None:
        self._metrics.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics rows of a run; a last line cut short by a crash is ignored."""
    rows = []
    with open(Path(run_dir) / "metrics.jsonl") as handle:
        for line in handle:
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # only the last line can be partial (append-only, flushed per line)
    return rows
