"""Evaluate a trained run: `purejaxsphere eval RUN_DIR [--backend mjx|cpu|metaworld] [--episodes N] ...`.

The policy of every seed of a checkpoint (deterministic mean action on the observation normalized with the seed's
training statistics: `train.deterministic_action`) on every task of the run's sequence, or on the tasks chosen:
- `mjx` / `cpu`: the run's tasks built with that physics and evaluated by the trainer's own compiled evaluation
  (`Trainer.evaluate_task`, i.e. `train.make_eval_fn` on the padded task), with the keys of the trainer's
  evaluation-matrix row for the checkpoint's task. So a task's final checkpoint, evaluated on the physics it was
  trained on with the run's `eval.episodes`, reproduces that row of eval_matrix.json exactly; on the other physics
  it checks a policy trained on MJX on C MuJoCo and vice versa.
- `metaworld` (MetaWorld tasks only): the real `metaworld` package's goal-observable env, run by mw-oracle in its
  own virtual environment (envs/metaworld/oracle.py) and stepped in lockstep with the jitted actor over its pipe
  (observations out, actions in) for the package's `max_path_length` (500) steps; an episode's success is the
  package's info["success"] at its last step (the trainer's rule). Object and goal positions are those the
  training env used: its fixed random reset vector, frozen into the package env as `_last_rand_vec` (as
  scripts/metaworld_expert.py and envs/metaworld/parity.py synchronise them, in the other direction).
Seeds dropped during training (`dropped_seeds` in summary.json or the checkpoint) are evaluated, marked, and left
out of the means.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxsphere import checkpoint as ckpt
from purejaxsphere.config import Config, ConfigError, read_run_config
from purejaxsphere.driver import Trainer, make_train
from purejaxsphere.logging import atomic_write_text, json_ready
from purejaxsphere.programs import TrainState, deterministic_action, map_members

if TYPE_CHECKING:
    from envs.metaworld.base import SawyerTask

BACKENDS = ("mjx", "cpu", "metaworld")


class EvalError(ValueError):
    """A bad run directory, checkpoint, task selection or backend (the CLI exits with code 2)."""


@dataclass
class Scores:
    """Per task and seed, [task, seed]: mean episode return, length and success (NaN where undefined)."""

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray


# --- the run: config, checkpoint, seeds ------------------------------------------------------------------------


def run_config(run_dir: Path) -> Config:
    """The run's resolved configuration; EvalError when RUN_DIR is not a readable run directory."""
    if not run_dir.is_dir():
        raise EvalError(f"{run_dir} is not a directory")
    try:
        return read_run_config(run_dir)
    except ConfigError as error:
        raise EvalError(f"bad run directory: {error}") from None


def choose_checkpoint(run_dir: Path, name: str | None, warn: Callable[[str], None]) -> Path:
    """The checkpoint called `name` (verified), or the newest one whose checksums verify."""
    available = [path.name for path in ckpt.list_checkpoints(run_dir)]
    if name is None:
        path = ckpt.latest_good_checkpoint(run_dir, warn=warn)
        if path is None:
            raise EvalError(f"no usable checkpoint in {run_dir / ckpt.CHECKPOINTS}"
                            + (f" ({len(available)} found, none verifies)" if available else ""))
        return path
    if name not in available:
        raise EvalError(f"no checkpoint {name!r} in {run_dir / ckpt.CHECKPOINTS}; available: "
                        f"{', '.join(available) or 'none'}")
    path = run_dir / ckpt.CHECKPOINTS / name
    problem = ckpt.verify_checkpoint(path)
    if problem is not None:
        raise EvalError(f"checkpoint {name} is corrupt ({problem})")
    return path


def state_template(trainer: Trainer, task_index: int) -> TrainState:
    """Zeros shaped like the carry while training task `task_index` (the structure of a checkpoint written then:
    the env states are that task's), computed without running anything."""
    shapes = jax.eval_shape(lambda: trainer.start_task(task_index, None))
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def restore(path: Path, trainer: Trainer) -> ckpt.Checkpoint:
    """The checkpoint at `path` restored into the carry of `trainer` (built with the run's own physics)."""
    try:
        return ckpt.load_checkpoint(path, state_template(trainer, ckpt.read_position(path).task_index))
    except ValueError as error:
        raise EvalError(str(error)) from None


def summary_dropped_seeds(run_dir: Path) -> list[int]:
    """Seeds the run dropped after a numerical fault, as its summary.json lists them (none without one)."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return []
    return [int(seed) for seed in json.loads(summary.read_text()).get("dropped_seeds", [])]


def task_indices(spec: str | None, tasks: Sequence[str]) -> list[int]:
    """`--tasks 0,2` -> [0, 2] (indices into the run's sequence); None -> every task."""
    if spec is None:
        return list(range(len(tasks)))
    try:
        indices = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise EvalError(f"--tasks: expected task indices like 0,2, got {spec!r}") from None
    bad = [i for i in indices if not 0 <= i < len(tasks)]
    if not indices or bad:
        raise EvalError(f"--tasks: {spec!r} names no task or one outside 0..{len(tasks) - 1} ({', '.join(tasks)})")
    return indices


def check_backend(backend: str, names: Sequence[str]) -> None:
    """A known backend, and `metaworld` only for MetaWorld tasks."""
    if backend not in BACKENDS:
        raise EvalError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    others = [name for name in names if not name.startswith("metaworld/")]
    if backend == "metaworld" and others:
        raise EvalError(f"--backend metaworld runs MetaWorld tasks only; this selection has {', '.join(others)} "
                        "(use --backend mjx or cpu, or --tasks)")


def backend_config(cfg: Config, physics: str, episodes: int) -> Config:
    """The run's config with the evaluation physics and episode count (the carry's structure depends on neither
    the episode count nor, for the networks, the physics)."""
    return dataclasses.replace(cfg, physics=physics, eval=dataclasses.replace(cfg.eval, episodes=episodes))


def build_trainer(cfg: Config) -> Trainer:
    try:
        return make_train(cfg)
    except ConfigError as error:
        raise EvalError(f"physics {cfg.physics}: {error}") from None


# --- mjx / cpu: the trainer's compiled evaluation ----------------------------------------------------------------


def evaluate_compiled(trainer: Trainer, state: TrainState, indices: Sequence[int], after_task: int) -> Scores:
    """`Trainer.evaluate_task` on each chosen task, keys of evaluation-matrix row `after_task`."""
    placed = trainer.place(jax.tree.map(jnp.asarray, state))
    rows = [trainer.evaluate_task(j, placed, after_task) for j in indices]
    stack = lambda key: np.stack([np.asarray(row[key], np.float64) for row in rows])  # noqa: E731
    return Scores(stack("eval_return"), stack("eval_length"), stack("eval_success"))


# --- metaworld: the real package ---------------------------------------------------------------------------------


def make_act_fn(trainer: Trainer) -> Callable[[Any, Any, np.ndarray], np.ndarray]:
    """jit(vmap over seeds) of the evaluation action: (actor_params [S], obs_stats [S], obs [S, B, obs]) ->
    actions [S, B, action_size] (float32 NumPy)."""
    act = jax.jit(map_members(partial(deterministic_action, trainer.nets.actor, trainer.cfg.ppo)))
    return lambda params, stats, obs: np.asarray(act(params, stats, jnp.asarray(obs, jnp.float32)))


def episode_positions(task: SawyerTask, episodes: int) -> list[np.ndarray]:
    """The random reset vector (object and goal positions) of each episode, as the training env draws them: the
    task's fixed vector for every episode (the default), else one fresh draw per episode."""
    if not task.randomize_each_episode:
        return [np.asarray(task.fixed_rand_vec, np.float64)] * episodes
    keys = jax.random.split(jax.random.PRNGKey(task.seed), episodes)
    return [np.asarray(task.sample_rand_vec(key), np.float64) for key in keys]


def positions_note(task: SawyerTask) -> dict[str, Any]:
    """Which object/goal positions a MetaWorld task uses, for the output."""
    if task.randomize_each_episode:
        return {"mode": "new every episode", "seed": task.seed}
    return {"mode": "fixed (the training env's)", "seed": task.seed,
            "rand_vec": np.asarray(task.fixed_rand_vec).tolist()}


def reference_env(name: str, rand_vec: np.ndarray) -> tuple[Any, np.ndarray]:
    """The package's goal-observable env (mw-oracle's, envs/metaworld/oracle.py) with its reset vector frozen at
    `rand_vec`, reset; (env, first obs).

    Reset twice: the package's reset runs its hand reset before placing the fixture from the vector, so the
    second reset is the one every later episode of a goal-observable env has (fixture already in place)."""
    import envs.metaworld as mw

    env = mw.reference(name, rand_vec=rand_vec)
    env.reset()
    obs, _ = env.reset()
    return env, obs


@dataclass
class Rollout:
    """Lockstep episodes of S x B package envs: observations [T + 1, S, B, obs], rewards and success flags
    [T, S, B] (the flag the env reports after each step)."""

    obs: np.ndarray
    rewards: np.ndarray
    success: np.ndarray


def lockstep_rollout(env_grid: Sequence[Sequence[Any]], first_obs: np.ndarray,
                     act: Callable[[np.ndarray], np.ndarray], steps: int) -> Rollout:
    """Step every mw-oracle env of `env_grid` ([S][B], one oracle) `steps` times with `act(obs [S, B, o]) ->
    [S, B, A]`: one actor call and one pipe round trip (`Oracle.step_many`) per step. Each env takes the first 4
    entries of its action (as PadWrapper does), in the actor's dtype."""
    flat = [env for row in env_grid for env in row]
    oracle, shape = flat[0].oracle, first_obs.shape[:2]
    obs, observations, rewards, success = first_obs, [first_obs], [], []
    for _ in range(steps):
        actions = act(obs)[..., :4].reshape(len(flat), -1)
        result = oracle.step_many(flat, actions)
        obs = result["obs"].reshape(*shape, -1)
        observations.append(obs)
        rewards.append(result["reward"].reshape(shape))
        success.append(result["info"]["success"].reshape(shape))
    return Rollout(np.stack(observations), np.asarray(rewards, np.float64), np.asarray(success, np.float64))


def pad_obs(obs: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last axis to `size` (what PadWrapper does to the training observations)."""
    return np.pad(obs, [(0, 0)] * (obs.ndim - 1) + [(0, size - obs.shape[-1])])


def evaluate_metaworld(trainer: Trainer, state: TrainState, indices: Sequence[int], episodes: int) -> Scores:
    """Each chosen task in the real package (mw-oracle): S seeds x `episodes` envs in lockstep, one actor call and
    one pipe round trip per step."""
    act = make_act_fn(trainer)
    params, stats = state.actor_params, state.obs_stats
    n_seeds = len(trainer.seeds)
    returns, lengths, successes = [], [], []
    for j in indices:
        task = trainer.tasks[j]
        positions = episode_positions(task, episodes)
        grid = [[reference_env(task.name, rand) for rand in positions] for _ in range(n_seeds)]
        env_grid = [[env for env, _ in row] for row in grid]
        first = np.array([[obs for _, obs in row] for row in grid])
        steps = env_grid[0][0].max_path_length
        rollout = lockstep_rollout(env_grid, first, lambda obs: act(params, stats, pad_obs(obs, trainer.obs_size)),
                                   steps)
        for env in (env for row in env_grid for env in row):
            env.close()
        returns.append(rollout.rewards.sum(axis=0).mean(axis=1))
        lengths.append(np.full(n_seeds, float(steps)))
        successes.append(rollout.success[-1].mean(axis=1))
    return Scores(np.stack(returns), np.stack(lengths), np.stack(successes))


# --- output --------------------------------------------------------------------------------------------------


def live_mean(values: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Mean over the live seeds (last axis); NaN when none is live."""
    return values[..., live].mean(axis=-1) if live.any() else np.full(values.shape[:-1], np.nan)


def make_payload(run_dir: Path, checkpoint: ckpt.Checkpoint, backend: str, episodes: int, trainer: Trainer,
                 indices: Sequence[int], scores: Scores, dropped: Sequence[int]) -> dict[str, Any]:
    """The JSON written to RUN_DIR/eval_<backend>.json: [task][seed] scores, per-task means over live seeds."""
    tasks = [trainer.tasks[j] for j in indices]
    successes = scores.successes.copy()
    successes[[not task.has_success for task in tasks]] = np.nan
    live = np.array([seed not in dropped for seed in trainer.seeds])
    keys = ("the trainer's evaluation-matrix keys for the checkpoint's task" if backend != "metaworld"
            else "none (deterministic policy; the package env's own physics)")
    payload: dict[str, Any] = {
        "run_dir": str(run_dir),
        "checkpoint": checkpoint.path.name if checkpoint.path else None,
        "trained_through": {"task_index": checkpoint.position.task_index,
                            "chunks_done": checkpoint.position.chunks_done},
        "backend": backend,
        "episodes": episodes,
        "keys": keys,
        "tasks": [task.name for task in tasks],
        "task_indices": list(indices),
        "seeds": trainer.seeds,
        "dropped_seeds": sorted(dropped),
        "layout": "[task][seed]; means over the seeds not dropped",
        "return": scores.returns,
        "length": scores.lengths,
        "success": successes,
        "mean_return": live_mean(scores.returns, live),
        "mean_success": live_mean(successes, live),
        "average_return": float(np.mean(live_mean(scores.returns, live))),
    }
    if any(task.has_success for task in tasks):
        payload["average_success"] = float(np.nanmean(live_mean(successes, live)))
    metaworld = [task for task in tasks if task.name.startswith("metaworld/")]
    if metaworld:
        payload["positions"] = {task.name: positions_note(task) for task in metaworld}
    if backend == "metaworld":
        payload["notes"] = [f"{task.name}: the run's episodes are {task.episode_length} steps, the package's "
                            f"{steps:.0f}" for task, steps in zip(tasks, scores.lengths[:, 0])
                            if task.episode_length != steps]
    return payload


def _cell(ret: float | None, success: float | None) -> str:
    text = "n/a" if ret is None else f"{ret:.2f}"
    return text + ("" if success is None else f" / {success:4.2f}")


def format_table(payload: dict[str, Any]) -> str:
    """Task x seed table of `return / success`, a mean column, and the average over tasks."""
    def value(x: Any) -> float | None:
        return None if x is None else float(x)

    clean = json_ready(payload)
    seeds, dropped = clean["seeds"], set(clean["dropped_seeds"])
    names = clean["tasks"]
    width = max(len("average"), *(len(name) for name in names))
    head = [f"seed {seed}" + (" (dropped)" if seed in dropped else "") for seed in seeds] + ["mean"]
    lines = [f"{clean['backend']} evaluation of {clean['run_dir']} (checkpoint {clean['checkpoint']}), "
             f"{clean['episodes']} episode(s) per seed; return" + (" / success" if "average_success" in clean else ""),
             " ".join([f"{'task':<{width}}"] + [f"{h:>17}" for h in head])]
    for t, name in enumerate(names):
        cells = [_cell(clean["return"][t][s], value(clean["success"][t][s])) for s in range(len(seeds))]
        cells.append(_cell(clean["mean_return"][t], value(clean["mean_success"][t])))
        lines.append(" ".join([f"{name:<{width}}"] + [f"{c:>17}" for c in cells]))
    average = _cell(clean["average_return"], value(clean.get("average_success")))
    lines.append(" ".join([f"{'average':<{width}}"] + [" " * 17] * len(seeds) + [f"{average:>17}"]))
    for name, note in clean.get("positions", {}).items():
        vector = f" rand_vec {note['rand_vec']}" if "rand_vec" in note else ""
        lines.append(f"{name}: object/goal positions {note['mode']}, seed {note['seed']}{vector}")
    lines.extend(f"note: {note}" for note in clean.get("notes", []))
    return "\n".join(lines)


def run_eval(run_dir: str | Path, backend: str | None = None, episodes: int | None = None,
             checkpoint: str | None = None, tasks: str | None = None, out: str | Path | None = None,
             warn: Callable[[str], None] = print) -> tuple[dict[str, Any], Path]:
    """Evaluate RUN_DIR's checkpoint on `backend` (default: the run's physics); write the JSON and return it with
    its path (default RUN_DIR/eval_<backend>.json). Raises EvalError for bad inputs."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    backend = backend or cfg.physics
    indices = task_indices(tasks, cfg.tasks)
    check_backend(backend, [cfg.tasks[j] for j in indices])
    if episodes is not None and episodes <= 0:
        raise EvalError(f"--episodes: must be positive, got {episodes}")
    episodes = episodes or cfg.eval.episodes
    path = choose_checkpoint(run_dir, checkpoint, warn)
    physics = cfg.physics if backend == "metaworld" else backend
    trainer = build_trainer(backend_config(cfg, physics, episodes))
    own = trainer if physics == cfg.physics else build_trainer(cfg)  # the carry's structure depends on physics
    restored = restore(path, own)
    dropped = sorted({trainer.seeds[m] for m in restored.dropped} | set(summary_dropped_seeds(run_dir)))
    if backend == "metaworld":
        scores = evaluate_metaworld(trainer, restored.state, indices, episodes)
    else:
        scores = evaluate_compiled(trainer, restored.state, indices, restored.position.task_index)
    payload = make_payload(run_dir, restored, backend, episodes, trainer, indices, scores, dropped)
    target = Path(out) if out else run_dir / f"eval_{backend}.json"
    atomic_write_text(target, json.dumps(json_ready(payload), indent=1, allow_nan=False) + "\n")
    return payload, target
