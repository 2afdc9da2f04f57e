"""`purejaxsphere bench`: env and trainer throughput of one task and batch shape, measured in one process.

Every figure is env steps per second over all seeds (one "env step" = one control step of one environment):

- raw_env:          jit(vmap(task.step)) of the bare task in a lax.scan of n_steps, random actions in [-1, 1]
- raw_env_wrapped:  the same through the trainer's wrapper stack (padding, episodes, auto-reset)
- collection:       the trainer's rollout (`train.make_rollout_fn`: policy inference + env step + storage)
- trainer:          the trainer's own compiled chunk program (`Trainer.compiled_chunk`): the whole loop (a scan of
                    PPO updates, each a rollout then GAE and epochs x minibatches), no evaluation
- update:           the update phase alone (GAE + epochs x minibatches), derived: time per update of the chunk
                    program minus time of one rollout (train.py has no separate learning function to time)
- brax_ppo:         `brax.training.agents.ppo.train` with the same batch shape, PPO settings and networks
                    (our actor and critic modules behind Brax's network interface; Brax's own loss, no SPHERE)
- mujoco_1thread:   one C MuJoCo MjData stepped with `mj_step` in a Python loop, random controls (what one
                    SB3-style worker process gets per core), in control steps (substeps per control step divided out)

A rate is steps / seconds of one call of a compiled program. All programs except Brax's are compiled first
(ahead of time, `lower().compile()`, timed separately), warmed up with one call, then timed in turns (3 rounds, each
program `min_seconds / 3` seconds per round), so that on a shared machine every program sees the same load and the
ratios stay meaningful. The fastest call is the headline figure (the least disturbed one); the median is kept
beside it. Brax's PPO runs its own loop afterwards: its compile time is its two warm-up epochs minus their
steady-state time.

Memory: `memory.trainer_chunk_bytes` is XLA's plan for the chunk program (arguments, outputs, temporaries; what a
GPU must hold for this batch shape), `memory.peak_rss_bytes` the process's peak resident memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs.brax_tasks import brax_env_for
from envs.core import Env
from envs.warp import installed_version
from purejaxsphere.config import Config, validate
from purejaxsphere.driver import Trainer
from purejaxsphere.programs import make_rollout_fn, map_members

SCHEMA = "purejaxsphere.bench/1"
RATE_KEYS = ("raw_env", "raw_env_wrapped", "collection", "update", "trainer", "brax_ppo", "mujoco_1thread")
VERSION_PACKAGES = ("jax", "jaxlib", "mujoco", "mujoco-mjx", "brax", "flax", "optax", "numpy")


# ---------------------------------------------------------------------------------------------------- machine
def load_average() -> list[float]:
    """1, 5 and 15 minute load averages of the machine (how many runnable processes share the cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU count, load, backend, package versions, XLA flags."""
    versions = {name: installed_version(name) for name in VERSION_PACKAGES}
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions,
    }


# ---------------------------------------------------------------------------------------------------- timing
@dataclasses.dataclass
class Timing:
    """Seconds per call of a compiled program, and how many env steps one call makes."""

    steps_per_call: int
    seconds: list[float]
    compile_seconds: float | None = None

    @property
    def best_seconds(self) -> float:
        return min(self.seconds)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Env steps/s of the fastest call."""
        return self.steps_per_call / self.best_seconds

    @property
    def median_rate(self) -> float:
        return self.steps_per_call / self.median_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps_per_s": finite(self.rate),
            "median_steps_per_s": finite(self.median_rate),
            "steps_per_call": self.steps_per_call,
            "calls": len(self.seconds),
            "best_seconds_per_call": finite(self.best_seconds),
            "median_seconds_per_call": finite(self.median_seconds),
            "compile_seconds": self.compile_seconds,
        }


def finite(x: float | None) -> float | None:
    """x, or None where it is missing or not finite (JSON has no NaN)."""
    return x if x is not None and math.isfinite(x) else None


@dataclasses.dataclass
class Program:
    """A compiled program to time: `call(carry) -> carry` makes `steps_per_call` env steps."""

    call: Callable[[Any], Any]
    carry: Any
    steps_per_call: int
    compile_seconds: float | None = None
    compiled: Any = None  # the jax Compiled object, where there is one (HLO: `compiled.as_text()`)


def compile_program(fn: Callable, *args: Any) -> tuple[Callable, float]:
    """`jax.jit(fn)` compiled ahead of time for `args`, and the seconds tracing and compiling took."""
    tick = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - tick


def jax_program(fn: Callable, carry: Any, steps_per_call: int, with_outputs: bool = False) -> Program:
    """Compile `fn` for `carry`. `fn: carry -> carry`, or with `with_outputs` `carry -> (carry, outputs)`: the
    outputs stay outputs of the compiled program (XLA computes and stores them, as the trainer does) and are dropped
    after each call."""
    compiled, compile_seconds = compile_program(fn, carry)
    call = (lambda c: compiled(c)[0]) if with_outputs else compiled
    return Program(call, carry, steps_per_call, compile_seconds, compiled)


def time_interleaved(programs: dict[str, Program], min_seconds: float, rounds: int = 3) -> dict[str, Timing]:
    """Time several programs in turns, so that all of them see the same (shared-machine) load.

    After one warm-up call each, `rounds` rounds give every program a slice of `min_seconds / rounds` seconds
    (at least one call per slice); every call is timed. The programs' carries are advanced in place.
    """
    seconds: dict[str, list[float]] = {name: [] for name in programs}
    for program in programs.values():
        program.carry = jax.block_until_ready(program.call(program.carry))
    for _ in range(rounds):
        for name, program in programs.items():
            end = time.perf_counter() + min_seconds / rounds
            while not seconds[name] or time.perf_counter() < end:
                tick = time.perf_counter()
                program.carry = jax.block_until_ready(program.call(program.carry))
                seconds[name].append(time.perf_counter() - tick)
    return {name: Timing(p.steps_per_call, seconds[name], p.compile_seconds) for name, p in programs.items()}


# ---------------------------------------------------------------------------------------------------- programs
def random_step_scan(env: Env, batch: int, length: int) -> Callable:
    """(states [batch], key) -> (states, key): `length` vmapped env steps with uniform random actions."""

    def run(carry):
        def body(state, key):
            action = jax.random.uniform(key, (batch, env.action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(state, action), None

        state, key = carry
        key, scan_key = jax.random.split(key)
        state, _ = jax.lax.scan(body, state, jax.random.split(scan_key, length))
        return state, key

    return run


def raw_env_program(env: Env, batch: int, length: int, seed: int = 0) -> Program:
    """Raw vmapped stepping of `batch` envs, `length` steps per compiled call."""
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(seed), batch))
    return jax_program(random_step_scan(env, batch, length), (states, jax.random.PRNGKey(seed + 1)), batch * length)


def trainer_programs(trainer: Trainer) -> dict[str, Program]:
    """The collection phase (the trainer's rollout) and the whole chunk program, on task 0.

    The rollout is the trainer's per-seed `make_rollout_fn`, vmapped over seeds and jitted here as the chunk
    program nests it; the chunk program is the trainer's own, compiled ahead of time by `Trainer.compiled_chunk`.
    """
    n_seeds = len(trainer.seeds)
    state = trainer.start_task(0, None)
    rollout = map_members(make_rollout_fn(trainer.programs(0).env, trainer.nets, trainer.cfg))
    collection = jax_program(rollout, state, trainer.plan.batch_size * n_seeds, with_outputs=True)
    chunk, chunk_compile = trainer.compiled_chunk(0, state)
    steps = trainer.plan.steps_per_chunk * n_seeds
    n_updates = trainer.chunk_updates(0)
    return {"collection": collection,
            "trainer": Program(lambda s: chunk(s, n_updates)[0], state, steps, chunk_compile, chunk)}


def program_memory(compiled: Any) -> dict[str, int] | None:
    """XLA's memory plan of a compiled program in bytes: arguments, outputs, temporaries, and `total` (what the
    device must hold while it runs; outputs aliased to donated arguments counted once). None where the backend
    does not report it."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # an optional report; some backends raise NotImplementedError
        return None
    if stats is None:
        return None
    sizes = {name: int(getattr(stats, f"{name}_size_in_bytes")) for name in ("argument", "output", "temp", "alias")}
    sizes["total"] = sizes["argument"] + sizes["output"] + sizes["temp"] - sizes["alias"]
    return sizes


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclasses.dataclass
class DerivedTiming(Timing):
    """A timing computed from others: `seconds` holds the best time, `median` the median time."""

    median: float = math.nan

    @property
    def median_seconds(self) -> float:
        return self.median


def update_phase(trainer_timing: Timing, collection: Timing, updates_per_chunk: int) -> Timing | None:
    """The update phase (GAE + epochs x minibatches) alone: a chunk call's time per PPO update minus a rollout
    call's time, for the fastest calls and for the medians (None where the fastest is not positive: timing noise)."""
    best = trainer_timing.best_seconds / updates_per_chunk - collection.best_seconds
    median = trainer_timing.median_seconds / updates_per_chunk - collection.median_seconds
    if best <= 0:
        return None
    return DerivedTiming(collection.steps_per_call, [best], median=median if median > 0 else math.nan)


# ---------------------------------------------------------------------------------------------------- Brax PPO
def brax_ppo_shape(cfg: Config) -> dict[str, int]:
    """Brax's PPO arguments for our batch shape: trajectories of n_steps, minibatches of minibatch_size samples.

    Brax samples minibatches of whole trajectories (`batch_size` of them, each `unroll_length` long), so the
    minibatch size must be a multiple of n_steps; raises ValueError otherwise.
    """
    ppo = cfg.ppo
    if ppo.minibatch_size % ppo.n_steps:
        raise ValueError(f"Brax PPO samples whole trajectories: minibatch_size {ppo.minibatch_size} is not a "
                         f"multiple of n_steps {ppo.n_steps}")
    batch_size = ppo.minibatch_size // ppo.n_steps
    return {
        "num_envs": cfg.num_envs,
        "unroll_length": ppo.n_steps,
        "batch_size": batch_size,
        "num_minibatches": cfg.num_envs // batch_size,
        "num_updates_per_batch": ppo.update_epochs,
    }


def brax_network_factory(actor: Any, critic: Any) -> Callable:
    """A Brax `network_factory` that uses our actor (Gaussian, no tanh) and critic modules.

    Brax preprocesses (normalises) the observation with its own running statistics, as our trainer does with its own.
    """
    from brax.training import distribution, networks
    from brax.training.agents.ppo import networks as ppo_networks

    def factory(observation_size: Any, action_size: int, preprocess_observations_fn: Callable, **_: Any):
        size = int(jax.tree_util.tree_leaves(observation_size)[-1])  # Brax passes a shape tuple
        dummy = jnp.zeros((1, size), jnp.float32)

        def policy_apply(processor_params, params, obs):
            obs = preprocess_observations_fn(obs, processor_params)
            out = actor.apply(params, obs.reshape((-1, size)))  # Brax's loss passes [batch, time, obs]
            mean = out.mean.reshape(obs.shape[:-1] + (action_size,))
            return mean, jnp.broadcast_to(jnp.exp(out.log_std), mean.shape)

        def value_apply(processor_params, params, obs):
            obs = preprocess_observations_fn(obs, processor_params)
            return critic.apply(params, obs.reshape((-1, size))).reshape(obs.shape[:-1])

        return ppo_networks.PPONetworks(
            policy_network=networks.FeedForwardNetwork(init=lambda key: actor.init(key, dummy), apply=policy_apply),
            value_network=networks.FeedForwardNetwork(init=lambda key: critic.init(key, dummy), apply=value_apply),
            parametric_action_distribution=distribution.NormalDistribution(event_size=action_size),
        )

    return factory


def brax_wrap_with_time_out(env: Any, episode_length: int, action_repeat: int = 1, randomization_fn: Any = None):
    """Brax's training wrappers plus `info["time_out"]` (= its `truncation`), which `bootstrap_on_timeout` reads:
    Brax PPO then bootstraps truncated episodes with V(final obs), as our trainer does."""
    from brax.envs.wrappers import training as brax_training

    class TimeOut(brax_training.Wrapper):
        def reset(self, rng: jax.Array) -> Any:
            state = self.env.reset(rng)
            state.info["time_out"] = state.info["truncation"]
            return state

        def step(self, state: Any, action: jax.Array) -> Any:
            state = self.env.step(state, action)
            state.info["time_out"] = state.info["truncation"]
            return state

    return TimeOut(brax_training.wrap(env, episode_length=episode_length, action_repeat=action_repeat,
                                      randomization_fn=randomization_fn))


@contextlib.contextmanager
def brax_jax_compat() -> Iterator[None]:
    """Brax 0.14.2's trainers call `jax.device_put_replicated`, which jax 0.10 removed from its public namespace
    (the implementation is still in jax._src.api); provide it while Brax trains."""
    if hasattr(jax, "device_put_replicated"):
        yield
        return
    from jax._src import api

    jax.device_put_replicated = api.device_put_replicated
    try:
        yield
    finally:
        del jax.device_put_replicated


BRAX_WARMUP_EPOCHS = 2


def brax_ppo_timing(trainer: Trainer, updates_per_epoch: int, timed_epochs: int) -> Timing:
    """Brax's PPO on task 0 with our batch shape, PPO settings and networks: one seed, no evaluation.

    Brax trains in epochs of `updates_per_epoch` PPO updates (one compiled call each) and reports env steps/s per
    epoch. The first two epochs are warm-up: the first compiles the epoch program, and the second compiled it again
    in one of our runs here (64 s; another run logged a second, 1.3 s compile of it); the next `timed_epochs` are
    timed.
    """
    from brax.training.agents.ppo import train as brax_ppo
    from brax.training.agents.ppo.optimizer import LRSchedule

    cfg, task = trainer.cfg, trainer.tasks[0]
    ppo = cfg.ppo
    shape = brax_ppo_shape(cfg)
    steps_per_epoch = updates_per_epoch * cfg.num_envs * ppo.n_steps
    epochs: list[dict[str, float]] = []

    def progress(_: int, metrics: dict[str, Any]) -> None:
        epochs.append({"sps": float(metrics["training/sps"]), "walltime": float(metrics["training/walltime"])})

    with warnings.catch_warnings(), brax_jax_compat():
        warnings.simplefilter("ignore")
        brax_ppo.train(
            environment=brax_env_for(task),
            num_timesteps=steps_per_epoch * (BRAX_WARMUP_EPOCHS + timed_epochs),
            num_evals=1 + BRAX_WARMUP_EPOCHS + timed_epochs,
            run_evals=False,
            episode_length=task.episode_length,
            learning_rate=ppo.learning_rate,
            entropy_cost=ppo.ent_coef,
            discounting=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clipping_epsilon=ppo.clip_eps,
            max_grad_norm=ppo.max_grad_norm,
            vf_loss_coefficient=ppo.vf_coef,
            normalize_observations=ppo.normalize_obs,
            normalize_advantage=ppo.normalize_advantage,
            bootstrap_on_timeout=True,
            wrap_env_fn=brax_wrap_with_time_out,
            learning_rate_schedule=LRSchedule.ADAPTIVE_KL if ppo.lr_schedule == "adaptive" else LRSchedule.NONE,
            desired_kl=ppo.target_kl,
            network_factory=brax_network_factory(trainer.nets.actor, trainer.nets.critic),
            seed=trainer.seeds[0],
            progress_fn=progress,
            **shape,
        )
    seconds = [steps_per_epoch / e["sps"] for e in epochs]
    warmup, timed = seconds[:BRAX_WARMUP_EPOCHS], seconds[BRAX_WARMUP_EPOCHS:]
    timing = Timing(steps_per_epoch, timed)
    timing.compile_seconds = max(sum(warmup) - len(warmup) * timing.best_seconds, 0.0)
    return timing


# ---------------------------------------------------------------------------------------------------- C MuJoCo
def mujoco_program(model: mujoco.MjModel, substeps: int, episode_length: int, seed: int = 0) -> Program:
    """Single-thread C MuJoCo: one call = one episode of `episode_length` control steps of `substeps` mj_step each,
    uniform random controls, from the model's first keyframe (or qpos0).

    There is no task termination here: where random controls make the simulation diverge (MuJoCo then resets the
    MjData itself and warns), the episode goes on from the reset; the carry counts those warnings (printing each
    would cost more than the step).
    """
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    limited = model.actuator_ctrllimited.astype(bool)
    low = np.where(limited, model.actuator_ctrlrange[:, 0], -1.0)
    high = np.where(limited, model.actuator_ctrlrange[:, 1], 1.0)

    def episode(unstable_resets: int) -> int:
        mujoco.mj_resetData(model, data)
        if model.nkey:
            mujoco.mj_resetDataKeyframe(model, data, 0)
        previous = mujoco.get_mju_user_warning()
        mujoco.set_mju_user_warning(lambda _: None)
        try:
            for control in rng.uniform(low, high, (episode_length, model.nu)):
                data.ctrl[:] = control
                mujoco.mj_step(model, data, substeps)
        finally:
            mujoco.set_mju_user_warning(previous)
        return unstable_resets + int(data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)

    return Program(episode, 0, episode_length)


# ---------------------------------------------------------------------------------------------------- the run
def bench_setup(cfg: Config, updates_per_chunk: int) -> Config:
    """The run's config for benchmarking its first task: one task, a chunk of `updates_per_chunk` PPO updates,
    no spectral diagnostics (a run computes them once per chunk of `eval.interval` steps, 100k in the paper's
    setup; in a chunk of a few updates their eNTK would cost more than the training and skew every rate)."""
    cfg = dataclasses.replace(cfg, tasks=list(cfg.tasks[:1]), eval=dataclasses.replace(cfg.eval),
                              diagnostics=dataclasses.replace(cfg.diagnostics, enabled=False))
    cfg.eval.interval = updates_per_chunk * cfg.num_envs * cfg.ppo.n_steps
    cfg.total_timesteps = cfg.eval.interval
    validate(cfg)
    return cfg


def setup_summary(cfg: Config, n_seeds: int) -> dict[str, Any]:
    net, ppo = cfg.network, cfg.ppo
    return {
        "task": cfg.tasks[0],
        "physics": cfg.physics,
        "num_envs": cfg.num_envs,
        "seeds": n_seeds,
        "envs_stepped": cfg.num_envs * n_seeds,
        "n_steps": ppo.n_steps,
        "minibatch_size": ppo.minibatch_size,
        "update_epochs": ppo.update_epochs,
        "updates_per_chunk": cfg.eval.interval // (cfg.num_envs * ppo.n_steps),
        "actor": net.actor,
        "n_experts": net.n_experts,
        "top_k": net.top_k,
        "hidden_sizes": list(net.hidden_sizes),
        "gate_hidden_sizes": list(net.gate_hidden_sizes),
        "critic_hidden_sizes": list(net.critic_hidden_sizes),
        "sphere_mode": cfg.sphere.mode,
        "diagnostics": cfg.diagnostics.enabled,
        "lr_schedule": ppo.lr_schedule,
        "episode_length": cfg.episode_length,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rate_ratios(rates: dict[str, float | None]) -> dict[str, float | None]:
    """The trainer's phases against raw stepping and against Brax's PPO."""
    return {
        "collection_over_raw": ratio(rates["collection"], rates["raw_env"]),
        "trainer_over_raw": ratio(rates["trainer"], rates["raw_env"]),
        "trainer_over_brax_ppo": ratio(rates["trainer"], rates["brax_ppo"]),
    }


def run_bench(cfg: Config, *, min_seconds: float, updates_per_chunk: int, brax_epochs: int, wrapped: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything on `cfg`'s first task; returns the JSON payload (see the module docstring).

    wrapped: also time raw stepping through the trainer's wrappers (two more compiles)."""
    cfg = bench_setup(cfg, updates_per_chunk)
    load_start = load_average()
    started = time.perf_counter()
    say = lambda message: log(f"bench [{time.perf_counter() - started:5.0f} s]: {message}")  # noqa: E731
    trainer = Trainer(cfg)
    task, n_seeds = trainer.tasks[0], len(trainer.seeds)
    batch, length = cfg.num_envs * n_seeds, cfg.ppo.n_steps
    notes: list[str] = []
    say(f"{task.name} ({cfg.physics}), {cfg.num_envs} envs x {n_seeds} seeds: compiling")
    programs = {"raw_env": raw_env_program(task, batch, length)}
    if wrapped:
        programs["raw_env_wrapped"] = raw_env_program(trainer.programs(0).env, batch, length)
    programs.update(trainer_programs(trainer))
    programs["mujoco_1thread"] = mujoco_program(task.mj_model, task.n_substeps, min(task.episode_length, 1000))
    say(f"timing {', '.join(programs)} in turns")
    load_timing = load_average()
    timings = time_interleaved(programs, min_seconds)
    update = update_phase(timings["trainer"], timings["collection"], updates_per_chunk)
    if update is None:
        notes.append("update: a chunk's time per update was not above the rollout's (timing noise)")
    else:
        timings["update"] = update
    if programs["mujoco_1thread"].carry:
        notes.append(f"mujoco_1thread: random controls made the simulation diverge {programs['mujoco_1thread'].carry} "
                     "times (MuJoCo reset it and the episode went on)")
    say("Brax PPO")
    try:
        timings["brax_ppo"] = brax_ppo_timing(trainer, updates_per_chunk, brax_epochs)
        if n_seeds > 1:
            notes.append(f"brax_ppo trains one seed; the other rates count all {n_seeds} seeds' env steps")
    except ValueError as error:  # a batch shape Brax cannot express
        notes.append(f"brax_ppo: not run ({error})")
    say("done")
    rates = {key: finite(timings[key].rate) if key in timings else None for key in RATE_KEYS}
    medians = {key: finite(timings[key].median_rate) if key in timings else None for key in RATE_KEYS}
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": {"start": load_start, "timing": load_timing, "end": load_average()},
        "setup": setup_summary(cfg, n_seeds),
        "rates": rates,
        "ratios": {**rate_ratios(rates), "raw_over_mujoco_1thread": ratio(rates["raw_env"], rates["mujoco_1thread"])},
        "median_rates": medians,
        "median_ratios": rate_ratios(medians),
        "compile_seconds": {key: timings[key].compile_seconds for key in
                            ("raw_env", "raw_env_wrapped", "collection", "trainer", "brax_ppo")
                            if key in timings},
        "measurements": {key: timing.as_dict() for key, timing in timings.items()},
        "memory": {"trainer_chunk_bytes": program_memory(programs["trainer"].compiled),
                   "peak_rss_bytes": peak_rss_bytes()},
        "notes": notes,
    }


ROWS = (
    ("raw_env", "raw env (jit(vmap(step)) scan)"),
    ("raw_env_wrapped", "raw env + trainer wrappers"),
    ("collection", "trainer collection phase"),
    ("update", "trainer update phase"),
    ("trainer", "trainer full loop (chunk)"),
    ("brax_ppo", "Brax PPO (same shape)"),
    ("mujoco_1thread", "C MuJoCo, 1 thread"),
)


def format_table(result: dict[str, Any]) -> str:
    """The payload as a plain-text table: rate, ratio to raw, median rate, compile seconds."""
    setup, rates, measurements = result["setup"], result["rates"], result["measurements"]
    machine = result["machine"]
    lines = [
        f"{setup['task']} physics={setup['physics']} num_envs={setup['num_envs']} seeds={setup['seeds']} "
        f"n_steps={setup['n_steps']} minibatch={setup['minibatch_size']} epochs={setup['update_epochs']} "
        f"actor={setup['actor']}(E={setup['n_experts']}, {setup['hidden_sizes']}) sphere={setup['sphere_mode']}",
        f"{machine['cpu_count']} CPUs, backend {machine['jax_backend']}, load average "
        f"{result['load_average']['start']} -> {result['load_average']['end']}",
        f"{'measurement':<32}{'env steps/s':>14}{'x raw':>8}{'median/s':>12}{'compile s':>11}",
    ]
    raw = rates["raw_env"]
    for key, label in ROWS:
        rate = rates.get(key)
        m = measurements.get(key, {})
        median = m.get("median_steps_per_s")
        compile_s = m.get("compile_seconds")
        lines.append(
            f"{label:<32}{_fmt(rate, 14, 0)}{_fmt(ratio(rate, raw), 8, 2)}"
            f"{_fmt(median, 12, 0)}{_fmt(compile_s, 11, 1)}"
        )
    for name in ("ratios", "median_ratios"):
        ratios = result[name]
        lines.append(f"{name.replace('_', ' ')}: collection/raw " + _fmt(ratios["collection_over_raw"], 0, 2).strip()
                     + ", trainer/raw " + _fmt(ratios["trainer_over_raw"], 0, 2).strip()
                     + ", trainer/brax_ppo " + _fmt(ratios["trainer_over_brax_ppo"], 0, 2).strip())
    chunk_memory = result["memory"]["trainer_chunk_bytes"]
    lines.append("memory: trainer chunk program " + (f"{chunk_memory['total'] / 2**30:.2f} GiB (XLA plan)"
                                                     if chunk_memory else "not reported")
                 + f", process peak RSS {result['memory']['peak_rss_bytes'] / 2**30:.2f} GiB")
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def _fmt(value: float | None, width: int, digits: int) -> str:
    text = "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"
    return f"{text:>{width}}"
