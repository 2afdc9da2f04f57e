"""Checkpoints of the whole carry (orbax), verified by checksums, kept as the last N plus every task's final one.

Layout: RUN_DIR/checkpoints/t<task>_c<chunks done>/ holding `state/` (the orbax PyTree of the TrainState with its
leading seed axis: params, optimizer states, normalizer, env states, keys, counters), `meta.json` (the position in
the sequence, the evaluation matrix so far, dropped members) and `manifest.json` (SHA-256 of every other file).

A checkpoint is written into a hidden temporary directory and renamed into place only once complete, with the
manifest written last; so a crash, a full disk or a kill while saving never touches the previous checkpoints, and a
checkpoint whose files were later truncated or corrupted fails its checksum and is skipped (with a message) in
favour of the previous good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from purejaxsphere.logging import atomic_write_text, json_ready

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^t(\d{3})_c(\d{5})$")


@dataclass
class Position:
    """Where a run stands: `chunks_done` chunks of task `task_index` are trained (and evaluated)."""

    task_index: int
    chunks_done: int

    @property
    def name(self) -> str:
        return f"t{self.task_index:03d}_c{self.chunks_done:05d}"


@dataclass
class Checkpoint:
    position: Position
    state: Any  # TrainState with a leading seed axis (NumPy leaves)
    eval_return: np.ndarray  # [task, task, seed], NaN where not yet evaluated
    eval_success: np.ndarray
    dropped: list[int] = field(default_factory=list)  # members (indices on the vmap axis) dropped after a fault
    task_final: bool = False  # the last chunk of its task (kept forever)
    path: Path | None = None


def _file_digests(root: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` atomically under RUN_DIR/checkpoints and return its directory."""
    import jax
    import orbax.checkpoint as ocp

    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint.position.name
    tmp = root / f".tmp-{checkpoint.position.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        leaves = jax.tree.leaves(jax.device_get(checkpoint.state))
        ocp.PyTreeCheckpointer().save(tmp / "state", _stored_leaves(leaves))
        meta = {
            "n_leaves": len(leaves),
            "task_index": checkpoint.position.task_index,
            "chunks_done": checkpoint.position.chunks_done,
            "task_final": checkpoint.task_final,
            "dropped": checkpoint.dropped,
            "eval_return": checkpoint.eval_return,
            "eval_success": checkpoint.eval_success,
        }
        (tmp / "meta.json").write_text(json.dumps(json_ready(meta)))
        atomic_write_text(tmp / "manifest.json", json.dumps({"sha256": _file_digests(tmp)}, indent=1))
        if final.exists():  # re-saving the same position (e.g. after resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories (not verified), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def verify_checkpoint(path: Path) -> str | None:
    """None when every file matches the manifest; otherwise what is wrong."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return "no manifest (incomplete checkpoint)"
    try:
        expected = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError) as error:
        return f"unreadable manifest ({error})"
    actual = _file_digests(path)
    if set(actual) != set(expected):
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        return f"file set differs from the manifest (missing {missing[:3]}, extra {extra[:3]})"
    bad = [name for name, digest in expected.items() if actual[name] != digest]
    return f"checksum mismatch in {bad[:3]}" if bad else None


def _stored_leaves(leaves: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The leaves orbax stores, keyed by position in the flattened carry (orbax refuses zero-size arrays, such as
    the empty actuator-activation vector of models without activation dynamics; those come from the template)."""
    return {f"{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves) if np.size(leaf) > 0}


def _nan_array(values: Any) -> np.ndarray:
    return np.array([[[np.nan if v is None else v for v in row] for row in task] for task in values], np.float64)


def load_checkpoint(path: Path, target: Any) -> Checkpoint:
    """Restore the checkpoint at `path` into the structure (and dtypes) of `target`, a TrainState with seed axis."""
    import jax
    import orbax.checkpoint as ocp

    leaves, treedef = jax.tree.flatten(target)
    template = [np.zeros(np.shape(x), np.asarray(x).dtype) for x in leaves]
    meta = json.loads((path / "meta.json").read_text())
    if meta["n_leaves"] != len(template):
        raise ValueError(f"checkpoint {path} holds {meta['n_leaves']} arrays, this run's carry {len(template)}: "
                         "it was written by a different configuration")
    stored = ocp.PyTreeCheckpointer().restore(path / "state", item=_stored_leaves(template))
    for key, value in stored.items():
        expected = template[int(key)]
        if value.shape != expected.shape or value.dtype != expected.dtype:
            raise ValueError(f"checkpoint {path}: array {key} is {value.shape} {value.dtype}, the run expects "
                             f"{expected.shape} {expected.dtype} (written by a different configuration)")
        template[int(key)] = value
    state = jax.tree.unflatten(treedef, template)
    return Checkpoint(
        position=Position(meta["task_index"], meta["chunks_done"]),
        state=state,
        eval_return=_nan_array(meta["eval_return"]),
        eval_success=_nan_array(meta["eval_success"]),
        dropped=list(meta["dropped"]),
        task_final=bool(meta["task_final"]),
        path=path,
    )


def read_position(path: Path) -> Position:
    meta = json.loads((path / "meta.json").read_text())
    return Position(meta["task_index"], meta["chunks_done"])


def latest_good_checkpoint(run_dir: str | Path, warn: Callable[[str], None] = print) -> Path | None:
    """The newest checkpoint whose checksums verify; each bad one passed over is reported through `warn`."""
    for path in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        warn(f"checkpoint {path.name} is corrupt ({problem}); falling back to the previous one")
    return None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` checkpoints, keeping every task's final checkpoint."""
    paths = list_checkpoints(run_dir)
    recent = set(paths[-keep_last:]) if keep_last > 0 else set()
    for path in paths:
        if path in recent:
            continue
        try:
            final = json.loads((path / "meta.json").read_text())["task_final"]
        except (OSError, ValueError, KeyError):
            final = False  # unreadable: not worth keeping
        if not final:
            shutil.rmtree(path, ignore_errors=True)
    for stale in (Path(run_dir) / CHECKPOINTS).glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
