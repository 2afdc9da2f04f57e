"""The continual-RL driver: the Python loop over tasks and chunks that calls the compiled programs
(purejaxsphere/programs.py).

`make_train(cfg)()` trains the task sequence: per task, one compiled chunk program called chunk after chunk;
after every chunk the members' fault flags are screened, the policy is evaluated and one metrics row per member is
logged; at the end of each task the evaluation matrix gets its row. Parameters, optimizer states and normalizer
statistics go from task to task as `cfg.carry` says. Run directories, checkpoints and trackers are
purejaxsphere/run.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Env
from purejaxsphere.checkpoint import Checkpoint, Position
from purejaxsphere.config import Config, seed_list, sweep_values
from purejaxsphere.distributed import barrier, make_placement, to_host
from purejaxsphere.programs import (
    FAULT_KEYS,
    TaskPlan,
    TaskPrograms,
    TrainState,
    build_networks,
    build_task_programs,
    inherit,
    make_tasks,
    plan_task,
    task_key,
)

PyTree = Any


def plan_notes(cfg: Config, plan: TaskPlan) -> list[str]:
    """Where the plan differs from the numbers asked for: the budget and the eval interval rounded to whole PPO
    updates of num_envs x ppo.n_steps env steps, a chunk shrunk to a budget below eval.interval, a shorter last
    chunk. Printed by `train --dry-run` and when a run starts."""
    batch, notes = plan.batch_size, []
    if plan.total_steps != cfg.total_timesteps:
        notes.append(f"total_timesteps={cfg.total_timesteps:,} is rounded up to {plan.total_steps:,} env steps per "
                     f"task and seed ({plan.total_updates} updates of num_envs x ppo.n_steps = {batch:,})")
    if cfg.eval.interval > plan.total_steps:
        notes.append(f"eval.interval={cfg.eval.interval:,} is more than the budget: one chunk of the whole budget, "
                     "evaluated at its end")
    elif plan.steps_per_chunk != cfg.eval.interval:
        notes.append(f"eval.interval={cfg.eval.interval:,} is rounded to {plan.steps_per_chunk:,} env steps "
                     f"({plan.updates_per_chunk} updates)")
    last = plan.updates_in_chunk(plan.n_chunks - 1)
    if last != plan.updates_per_chunk:
        notes.append(f"the last chunk of each task runs {last} of {plan.updates_per_chunk} updates")
    return notes


def format_plan(cfg: Config, tasks: list[Env], run_dir: Any) -> str:
    """The plan of a run, as `train --dry-run` prints it: tasks, chunks and updates, env steps, members, physics,
    the run directory, and every rounding of the numbers asked for."""
    plan, seeds, values = plan_task(cfg), seed_list(cfg), sweep_values(cfg)
    members = f"{len(seeds)} seed{'s' * (len(seeds) > 1)} {seeds}"
    if cfg.sweep.key:
        members = f"{len(values) * len(seeds)} = {len(values)} values of {cfg.sweep.key} {values} x {members}"
    chunk_size = f"{plan.updates_per_chunk} updates ({plan.steps_per_chunk:,} env steps)"
    per_seed = plan.total_steps * len(tasks)
    lines = [
        "purejaxsphere: dry run (nothing compiled, nothing written)",
        f"  algorithm   {cfg.algo} (actor {cfg.network.actor}, sphere {cfg.sphere.mode}), protocol {cfg.protocol}",
        f"  benchmark   {cfg.benchmark}, physics {cfg.physics}",
        f"  members     {members}",
        f"  per task    {plan.total_steps:,} env steps per seed = {plan.total_updates} PPO updates of "
        f"{cfg.num_envs} envs x {cfg.ppo.n_steps} steps",
        f"  chunks      {plan.n_chunks} per task of {chunk_size}, each followed by an evaluation "
        f"({cfg.eval.episodes} episodes)",
        f"  in all      {per_seed:,} env steps per seed, {per_seed * len(values) * len(seeds):,} for all members",
        f"  tasks       {len(tasks)}",
        *(f"    {i:>2}  {task.name:<40} obs {task.observation_size:>3}  act {task.action_size:>2}  "
          f"episode {task.episode_length}" for i, task in enumerate(tasks)),
        f"  run dir     {run_dir}",
    ]
    return "\n".join(lines + [f"  note        {note}" for note in plan_notes(cfg, plan)])


@dataclass
class RunResult:
    state: TrainState  # final carry, leading seed axis
    seeds: list[int]  # per member: the seed (repeated for each sweep value)
    tasks: list[str]
    eval_return: np.ndarray  # [trained task i, evaluated task j, seed]; NaN where j > i or the seed was dropped
    eval_success: np.ndarray
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the rows logged by this call
    dropped: list[int] = field(default_factory=list)  # members (indices) dropped after a numerical fault
    position: Position | None = None  # where training stopped
    interrupted: bool = False  # stopped early on request (signal); resume from the last checkpoint
    sweep_values: list[float | None] = field(default_factory=list)  # per member; None without a sweep
    sweep_key: str | None = None
    stop_signal: int | None = None  # the signal that asked an interrupted run to stop (set by run.run)

    @property
    def dropped_seeds(self) -> list[int]:
        return [self.seeds[m] for m in self.dropped]


class NumericalFault(RuntimeError):
    """A seed's losses, gradients, parameters or observations went non-finite (and cfg.fault.on_nan is "stop")."""

    last_checkpoint: Path | None = None  # set by run.run: the last good checkpoint, where a resume starts


Logger = Callable[[dict[str, Any]], None]
Progress = Callable[[int, str], None]
ChunkHook = Callable[[Checkpoint], None]


@dataclass
class Hooks:
    """Where the driver reports (all optional): see `Trainer.__call__`."""

    logger: Logger | None = None
    progress: Progress | None = None
    on_chunk_end: ChunkHook | None = None
    stop_requested: Callable[[], bool] | None = None
    warn: Callable[[str], None] = print


@dataclass
class Loop:
    """What the driver carries on the host from chunk to chunk, beside the compiled carry `state`."""

    state: TrainState | None
    eval_return: np.ndarray  # [trained task, evaluated task, member]
    eval_success: np.ndarray
    dropped: list[int]  # members dropped after a numerical fault
    position: Position | None  # the last chunk done
    rows: list[dict[str, Any]] = field(default_factory=list)  # the rows logged by this call
    compile_seconds: float = 0.0  # of the current task's chunk program
    started: float = field(default_factory=time.perf_counter)


def describe_faults(summary: dict[str, np.ndarray], seed_index: int) -> list[str]:
    """The quantities (loss, grad, params, obs) flagged non-finite for one seed in a chunk summary."""
    return [key.removeprefix("fault_") for key in FAULT_KEYS if summary[key][seed_index] > 0]


def keep_seeds(mask: np.ndarray, good: TrainState, new: TrainState) -> TrainState:
    """`new` where mask[seed] is False, `good` (the last finite state) where it is True."""
    def pick(g: jax.Array, n: jax.Array) -> jax.Array:
        m = jnp.asarray(mask).reshape((-1,) + (1,) * (n.ndim - 1))
        return jnp.where(m, g, n)

    return jax.tree.map(pick, good, new)


class Trainer:
    """`make_train(cfg)` returns one: builds the tasks and their compiled programs; calling it trains the sequence."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        # Members of the vmap axis: every (sweep value, seed) pair, value-major; without a sweep, the seeds.
        self.sweep_values = [v for v in sweep_values(cfg) for _ in seed_list(cfg)]
        self.seeds = [seed for _ in sweep_values(cfg) for seed in seed_list(cfg)]
        self.tasks = make_tasks(cfg)
        self.obs_size = max(task.observation_size for task in self.tasks)
        self.action_size = max(task.action_size for task in self.tasks)
        self.nets = build_networks(cfg, self.action_size)
        self.plan = plan_task(cfg)
        # With several devices the carry's seed (or env) axis is sharded over them; None on one device.
        self._placement = make_placement(len(self.seeds), cfg.num_envs)
        # Programs are keyed by task name: a task that comes back later in the sequence reuses its compiled
        # programs (its keys and state are data). Different tasks are different programs (their physics and rewards
        # are code); across runs and resumes the persistent compilation cache (cfg.compile_cache) avoids recompiles.
        self._programs: dict[str, TaskPrograms] = {}
        self._compiled: dict[str, Callable] = {}

    def programs(self, task_index: int) -> TaskPrograms:
        name = self.cfg.tasks[task_index]
        if name not in self._programs:
            self._programs[name] = build_task_programs(
                self.tasks[task_index], self.nets, self.cfg, self.obs_size, self.action_size
            )
        return self._programs[name]

    def task_keys(self, task_index: int) -> jax.Array:
        return jnp.stack([task_key(seed, task_index) for seed in self.seeds])

    def eval_keys(self, task_index: int, chunk: int) -> jax.Array:
        # Independent of the training keys, so evaluating never changes what training does.
        return jnp.stack([jax.random.fold_in(task_key(seed, task_index), 1_000_003 + chunk) for seed in self.seeds])

    def start_task(self, task_index: int, previous: TrainState | None) -> TrainState:
        """The state a task starts from: fresh, then what `cfg.carry` keeps from the previous task's final state."""
        fresh = self.place(self.fresh_state(task_index))  # placed first: inherit's arithmetic sees one sharding
        return fresh if previous is None else self.place(inherit(previous, fresh, self.cfg))

    def evaluate_untrained(self, task_index: int = 0) -> dict[str, np.ndarray]:
        """The evaluation (per member) of the policy a run starts task `task_index` with, before any training, with
        that task's first evaluation keys: a learning curve's step 0."""
        start = self.start_task(task_index, None)
        scores = self.programs(task_index).evaluate(start.actor_params, start.obs_stats, self.eval_keys(task_index, 0))
        return jax.device_get(scores)

    def fresh_state(self, task_index: int) -> TrainState:
        """Every member's freshly initialized state for a task (its keys and, with a sweep, its value)."""
        values = jnp.asarray([v or 0.0 for v in self.sweep_values], jnp.float32)
        return self.programs(task_index).init(self.task_keys(task_index), values)

    def place(self, tree: PyTree) -> PyTree:
        """Put a pytree with a leading seed axis where the compiled programs expect it (all devices, sharded)."""
        return tree if self._placement is None else self._placement(tree)

    def initial_state(self) -> TrainState:
        """The state the run starts from (the structure a checkpoint of task 0 restores into; a checkpoint of task
        t restores into `start_task(t, None)`: each task's env state is its own pytree)."""
        return self.start_task(0, None)

    def compiled_chunk(self, task_index: int, state: TrainState) -> tuple[Callable, float]:
        """The task's chunk program compiled ahead of time for `state`'s shapes, and the seconds compiling took
        (0.0 when this task name was compiled before in the run)."""
        name = self.cfg.tasks[task_index]
        if name in self._compiled:
            return self._compiled[name], 0.0
        tick = time.perf_counter()
        self._compiled[name] = self.programs(task_index).chunk.lower(
            state, self.chunk_updates(0)).compile()
        # Several hosts: the sharded program holds collectives, whose first use fails unless every host joins within
        # 30 s (CPU/gloo); a host can be minutes behind, still compiling.
        barrier("purejaxsphere.chunk_compiled")
        return self._compiled[name], time.perf_counter() - tick

    def chunk_updates(self, chunk: int) -> jax.Array:
        """The number of updates chunk `chunk` of a task runs (the chunk program's `n_updates`), placed."""
        return self.place(jnp.asarray(self.plan.updates_in_chunk(chunk), jnp.int32))

    @property
    def total_chunks(self) -> int:
        return len(self.tasks) * self.plan.n_chunks

    def evaluate_task(self, task_index: int, state: TrainState, after_task: int) -> dict[str, np.ndarray]:
        """The policy of every seed on task `task_index`, with the keys of evaluation-matrix row `after_task`
        (so re-evaluating a task's final checkpoint reproduces that row): eval_return/length/success, [seed]."""
        keys = self.eval_keys(task_index, 10_000 + after_task)
        return to_host(self.programs(task_index).evaluate(state.actor_params, state.obs_stats, keys))

    def evaluate_seen(self, task_index: int, state: TrainState) -> tuple[np.ndarray, np.ndarray]:
        """Row `task_index` of the evaluation matrix: the current policy on every task seen so far ([task, seed])."""
        n_tasks, n_seeds = len(self.tasks), len(self.seeds)
        returns, successes = np.full((n_tasks, n_seeds), np.nan), np.full((n_tasks, n_seeds), np.nan)
        for seen in range(task_index + 1):
            evaluation = self.evaluate_task(seen, state, task_index)
            returns[seen], successes[seen] = evaluation["eval_return"], evaluation["eval_success"]
        return returns, successes

    def member_name(self, member: int) -> str:
        """How messages name a member: "seed 1", or "seed 1 (sphere.ratio=0.1)" with a sweep."""
        sweep = f" ({self.cfg.sweep.key}={self.sweep_values[member]})" if self.cfg.sweep.key else ""
        return f"seed {self.seeds[member]}{sweep}"

    def dropped_mask(self, dropped: list[int]) -> np.ndarray:
        return np.array([m in dropped for m in range(len(self.seeds))])

    def __call__(
        self,
        logger: Logger | None = None,
        progress: Progress | None = None,
        *,
        resume: Checkpoint | None = None,
        on_chunk_end: ChunkHook | None = None,
        stop_requested: Callable[[], bool] | None = None,
        warn: Callable[[str], None] = print,
    ) -> RunResult:
        """Train the whole sequence, or what is left of it after `resume` (a restored checkpoint).

        `logger(row)` gets every per-seed, per-chunk metrics row; `progress(done, message)` is told when a task
        compiles and after every chunk; `on_chunk_end(checkpoint)` is called after every chunk with the carry and
        the evaluation matrix so far (the caller saves checkpoints); when `stop_requested()` turns true, training
        stops after the current chunk (and its hook) with `interrupted=True`. A seed whose state goes non-finite
        stops the run (NumericalFault, before the hook, so the last checkpoint stays the last good one) or, with
        cfg.fault.on_nan = "drop_seed", is frozen at its last finite state and left out of all results."""
        hooks = Hooks(logger, progress, on_chunk_end, stop_requested, warn)
        loop, first = self.begin(resume)
        for task_index in range(first.task_index, len(self.tasks)):
            first_chunk = first.chunks_done if task_index == first.task_index else 0
            program = self.enter_task(loop, task_index, first_chunk, hooks.progress)
            for chunk in range(first_chunk, self.plan.n_chunks):
                previous = loop.state
                summary, seconds = self.run_chunk(loop, program, chunk)
                self.screen_faults(loop, previous, summary, task_index, chunk, hooks.warn)
                rows = self.log_rows(loop, task_index, chunk, summary, seconds, hooks.logger)
                task_final = chunk == self.plan.n_chunks - 1
                if task_final:
                    self.finish_task(loop, task_index)
                self.end_chunk(loop, Position(task_index, chunk + 1), task_final, rows, hooks)
                last_of_run = task_final and task_index == len(self.tasks) - 1
                if hooks.stop_requested is not None and hooks.stop_requested() and not last_of_run:
                    return self.result(loop, interrupted=True)
        return self.result(loop)

    def begin(self, resume: Checkpoint | None) -> tuple[Loop, Position]:
        """The loop's starting point (empty, or what `resume` restored) and the first chunk to train."""
        if resume is None:
            empty = np.full((len(self.tasks), len(self.tasks), len(self.seeds)), np.nan)
            return Loop(None, empty, empty.copy(), [], None), Position(0, 0)
        state = self.place(jax.tree.map(jnp.asarray, resume.state))
        loop = Loop(state, resume.eval_return.copy(), resume.eval_success.copy(), list(resume.dropped),
                    resume.position)
        first = resume.position
        if first.chunks_done >= self.plan.n_chunks:  # resumed at a task's end: the next task starts from it
            first = Position(first.task_index + 1, 0)
        return loop, first

    def enter_task(self, loop: Loop, task_index: int, first_chunk: int, progress: Progress | None) -> Callable:
        """Start task `task_index` (unless resuming inside it) and return its compiled chunk program."""
        if first_chunk == 0:
            loop.state = self.start_task(task_index, loop.state)
        if progress is not None:
            progress(task_index * self.plan.n_chunks + first_chunk, f"compiling {self.tasks[task_index].name}")
        program, loop.compile_seconds = self.compiled_chunk(task_index, loop.state)
        return program

    def run_chunk(self, loop: Loop, program: Callable, chunk: int) -> tuple[dict[str, np.ndarray], float]:
        """One call of the chunk program: the new carry into `loop`; (the chunk's summary on the host, seconds)."""
        tick = time.perf_counter()
        state, summary = program(loop.state, self.chunk_updates(chunk))
        loop.state = self.place(state)  # outputs keep the compiled input shardings (a no-op on one device)
        summary = to_host(summary)
        return summary, time.perf_counter() - tick

    def screen_faults(self, loop: Loop, previous: TrainState, summary: dict[str, np.ndarray], task_index: int,
                      chunk: int, warn: Callable[[str], None]) -> None:
        """Stop (NumericalFault) or drop every member newly flagged non-finite; dropped members are frozen at their
        last finite state (`previous`), so nothing non-finite propagates."""
        for member in range(len(self.seeds)):
            bad = describe_faults(summary, member)
            if not bad or member in loop.dropped:
                continue
            name = self.member_name(member)
            message = (f"non-finite {', '.join(bad)} in {name}, task {self.tasks[task_index].name} "
                       f"(index {task_index}), chunk {chunk}")
            if self.cfg.fault.on_nan == "stop":
                raise NumericalFault(message)
            warn(f"{message}: {name} dropped, the others go on")
            loop.dropped.append(member)
        mask = self.dropped_mask(loop.dropped)
        if mask.any():
            loop.state = self.place(keep_seeds(mask, previous, loop.state))

    def log_rows(self, loop: Loop, task_index: int, chunk: int, summary: dict[str, np.ndarray], seconds: float,
                 logger: Logger | None) -> list[dict[str, Any]]:
        """Evaluate the policy after the chunk; one metrics row per live member, logged and kept in `loop`."""
        task, plan = self.tasks[task_index], self.plan
        evaluation = to_host(self.programs(task_index).evaluate(
            loop.state.actor_params, loop.state.obs_stats, self.eval_keys(task_index, chunk)))
        steps = plan.steps_after(chunk + 1)
        timing = {
            "steps_per_s": plan.updates_in_chunk(chunk) * plan.batch_size * len(self.seeds) / seconds,
            "chunk_seconds": seconds,
            "compile_seconds": loop.compile_seconds,
            "elapsed_seconds": time.perf_counter() - loop.started,
        }
        rows = []
        for member in (m for m in range(len(self.seeds)) if m not in loop.dropped):
            row = {
                "task": task.name,
                "task_index": task_index,
                "chunk": chunk,
                "seed": self.seeds[member],
                **({"sweep_key": self.cfg.sweep.key, "sweep_value": self.sweep_values[member]}
                   if self.cfg.sweep.key else {}),
                "env_steps": steps,
                "total_env_steps": task_index * plan.total_steps + steps,
                **{k: float(v[member]) for k, v in summary.items()},
                **{k: float(v[member]) for k, v in evaluation.items()},
                **timing,
            }
            if not task.has_success:
                row["train_success"] = row["eval_success"] = None
            rows.append(row)
            if logger is not None:
                logger(row)
        loop.rows.extend(rows)
        return rows

    def finish_task(self, loop: Loop, task_index: int) -> None:
        """Row `task_index` of the evaluation matrix (NaN for dropped members)."""
        loop.eval_return[task_index], loop.eval_success[task_index] = self.evaluate_seen(task_index, loop.state)
        mask = self.dropped_mask(loop.dropped)
        loop.eval_return[:, :, mask] = loop.eval_success[:, :, mask] = np.nan

    def end_chunk(self, loop: Loop, position: Position, task_final: bool, rows: list[dict[str, Any]],
                  hooks: Hooks) -> None:
        """Record the position; hand the checkpoint to `on_chunk_end`; tell `progress`."""
        loop.position = position
        if hooks.on_chunk_end is not None:
            hooks.on_chunk_end(Checkpoint(position, loop.state, loop.eval_return, loop.eval_success,
                                          list(loop.dropped), task_final))
        if hooks.progress is not None:
            done = position.task_index * self.plan.n_chunks + position.chunks_done
            mean_return = np.mean([row["eval_return"] for row in rows]) if rows else np.nan
            steps_per_s = rows[0]["steps_per_s"] if rows else np.nan
            hooks.progress(done, f"{self.tasks[position.task_index].name} eval return {mean_return:.1f}, "
                                 f"{steps_per_s:.0f} steps/s")

    def result(self, loop: Loop, interrupted: bool = False) -> RunResult:
        return RunResult(loop.state, self.seeds, list(self.cfg.tasks), loop.eval_return, loop.eval_success,
                         loop.rows, loop.dropped, loop.position, interrupted=interrupted,
                         sweep_values=self.sweep_values, sweep_key=self.cfg.sweep.key)


def make_train(cfg: Config) -> Trainer:
    """Build the tasks and networks of a run; `make_train(cfg)()` trains the whole sequence. Run directories,
    resume, checkpoints and trackers: `purejaxsphere.run.run(cfg)`."""
    return Trainer(cfg)
