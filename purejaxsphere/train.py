"""Compiled task programs and the continual-RL driver.

Per task, one jitted program advances every seed by one chunk of PPO updates:
    jit(vmap over seeds(lax.scan over updates(rollout scan over vmapped envs -> GAE -> epochs x minibatches)))
The driver (`make_train(cfg)()`) runs the task sequence in Python, one program call per chunk, evaluates after
every chunk, fills the evaluation matrix at the end of each task, and carries parameters, optimizer states and
normalizer statistics from task to task as `cfg.carry` says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

import envs
from envs.core import Env, EpisodeWrapper, PadWrapper, State, training_env
from purejaxsphere import plasticity
from purejaxsphere import ppo as ppo_lib
from purejaxsphere.config import Config, ConfigError, PPOConfig, seed_list
from purejaxsphere.networks import Actor, Critic, gaussian_log_prob
from purejaxsphere.normalize import RunningStats, init_stats, normalize, update_stats

PyTree = Any


@struct.dataclass
class TrainState:
    """Everything that changes during training, for one seed (a leading seed axis when vmapped)."""

    actor_params: PyTree
    critic_params: PyTree
    actor_opt_state: PyTree
    critic_opt_state: PyTree
    obs_stats: RunningStats
    env_state: State
    key: jax.Array
    learning_rate: jax.Array
    update_step: jax.Array  # PPO updates done in the current task
    actor_init_params: PyTree  # the run's first actor initialization (L2-init's theta_0), carried across tasks


class Networks(NamedTuple):
    actor: Actor
    critic: Critic
    optimizer: optax.GradientTransformation


def build_networks(cfg: Config, action_size: int) -> Networks:
    net = cfg.network
    actor = Actor(
        action_size=action_size,
        kind=net.actor,
        hidden_sizes=tuple(net.hidden_sizes),
        n_experts=net.n_experts,
        top_k=net.top_k,
        temperature=net.temperature,
        n_shared=net.n_shared,
        gate_hidden_sizes=tuple(net.gate_hidden_sizes),
    )
    return Networks(actor, Critic(tuple(net.critic_hidden_sizes)), ppo_lib.make_optimizer(cfg.ppo))


def task_key(seed: int, task_index: int) -> jax.Array:
    """The key a seed starts a task with; depends only on (seed, task index), so seeds are independent."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), task_index)


def init_train_state(key: jax.Array, env: Env, nets: Networks, cfg: Config) -> TrainState:
    """Fresh parameters, optimizer states, normalizer, envs and learning rate for one seed."""
    actor_key, critic_key, env_key, key = jax.random.split(key, 4)
    dummy = jnp.zeros((1, env.observation_size), jnp.float32)
    actor_params = nets.actor.init(actor_key, dummy)
    critic_params = nets.critic.init(critic_key, dummy)
    env_state = jax.vmap(env.reset)(jax.random.split(env_key, cfg.num_envs))
    return TrainState(
        actor_params=actor_params,
        critic_params=critic_params,
        actor_opt_state=nets.optimizer.init(actor_params),
        critic_opt_state=nets.optimizer.init(critic_params),
        obs_stats=init_stats(env.observation_size),
        env_state=env_state,
        key=key,
        learning_rate=jnp.asarray(cfg.ppo.learning_rate, jnp.float32),
        update_step=jnp.zeros((), jnp.int32),
        actor_init_params=actor_params,
    )


def inherit(previous: TrainState, fresh: TrainState, cfg: Config) -> TrainState:
    """Start a new task from `fresh`, taking from `previous` what `cfg.carry` says (learning rate restarts).

    Carried actor parameters go through Shrink & Perturb when configured (shrink * theta + perturb * the fresh
    initialization); the L2-init reference stays the run's first initialization while parameters are carried.
    """
    carry, pla = cfg.carry, cfg.plasticity
    state = fresh
    if carry.params:
        actor_params = previous.actor_params
        if plasticity.uses_shrink_perturb(pla):
            actor_params = plasticity.shrink_perturb(actor_params, fresh.actor_params, pla.shrink, pla.perturb)
        state = state.replace(
            actor_params=actor_params,
            critic_params=previous.critic_params,
            actor_init_params=previous.actor_init_params,
        )
    if carry.optimizer:
        state = state.replace(actor_opt_state=previous.actor_opt_state, critic_opt_state=previous.critic_opt_state)
    if carry.normalizer:
        state = state.replace(obs_stats=previous.obs_stats)
    return state


def policy_obs(ppo: PPOConfig, stats: RunningStats, obs: jax.Array) -> jax.Array:
    """What the networks see: the observation normalized by the running statistics (when enabled) and clipped."""
    return normalize(stats, obs, ppo.obs_clip, ppo.normalize_obs)


def make_rollout_fn(env: Env, nets: Networks, cfg: Config) -> Callable:
    """Collection phase for one seed: n_steps of policy inference + vmapped env step, as one scan.

    Returns (state, (Transition [T, N, ...], episode sums [T, 3] = finished episodes, their returns, successes)).
    """
    ppo = cfg.ppo
    actor_apply, critic_apply = nets.actor.apply, nets.critic.apply

    def env_step(state: TrainState, _):
        key, action_key = jax.random.split(state.key)
        env_state = state.env_state
        stats = update_stats(state.obs_stats, env_state.obs) if ppo.normalize_obs else state.obs_stats
        obs = policy_obs(ppo, stats, env_state.obs)
        out = actor_apply(state.actor_params, obs)
        value = critic_apply(state.critic_params, obs)
        action = out.mean + jnp.exp(out.log_std) * jax.random.normal(action_key, out.mean.shape)
        log_prob = gaussian_log_prob(out.mean, out.log_std, action)
        next_env_state = jax.vmap(env.step)(env_state, jnp.clip(action, -1.0, 1.0))
        info = next_env_state.info
        # Truncated episodes are bootstrapped with the value of their last observation (as SB3 does).
        final_value = critic_apply(state.critic_params, policy_obs(ppo, stats, info["final_obs"]))
        reward = next_env_state.reward + ppo.gamma * final_value * info["truncation"]
        transition = ppo_lib.Transition(obs, action, log_prob, value, reward, next_env_state.done)
        done = next_env_state.done
        episodes = jnp.stack([jnp.sum(done), jnp.sum(done * info["final_return"]), jnp.sum(done * info["final_success"])])
        return state.replace(env_state=next_env_state, obs_stats=stats, key=key), (transition, episodes)

    return lambda state: jax.lax.scan(env_step, state, None, length=ppo.n_steps)


def make_update_fn(env: Env, nets: Networks, cfg: Config, total_updates: int) -> Callable:
    """One PPO update for one seed: rollout of n_steps over num_envs, GAE, epochs x minibatches."""
    ppo = cfg.ppo
    actor_apply, critic_apply = nets.actor.apply, nets.critic.apply
    batch_size = cfg.num_envs * ppo.n_steps
    n_minibatches = batch_size // ppo.minibatch_size
    rollout = make_rollout_fn(env, nets, cfg)

    def update(state: TrainState, _):
        state, (traj, episodes) = rollout(state)
        last_value = critic_apply(state.critic_params, policy_obs(ppo, state.obs_stats, state.env_state.obs))
        advantages, targets = ppo_lib.compute_gae(
            traj.reward, traj.value, traj.done, last_value, ppo.gamma, ppo.gae_lambda
        )
        flat = lambda x: x.reshape((batch_size,) + x.shape[2:])  # noqa: E731
        batch = ppo_lib.Batch(flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(advantages), flat(targets))
        if ppo.lr_schedule == "adaptive":
            learning_rate = state.learning_rate
        else:
            learning_rate = ppo_lib.linear_learning_rate(ppo, state.update_step / total_updates)
        minibatch_step = lambda carry, mb: ppo_lib.minibatch_update(  # noqa: E731
            carry, mb, actor_apply=actor_apply, critic_apply=critic_apply, optimizer=nets.optimizer,
            ppo=ppo, sphere_cfg=cfg.sphere, plasticity_cfg=cfg.plasticity, reference_params=state.actor_init_params,
        )

        def epoch(carry: ppo_lib.UpdateState, key: jax.Array):
            perm = jax.random.permutation(key, batch_size)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((n_minibatches, -1) + x.shape[1:]), batch)
            return jax.lax.scan(minibatch_step, carry, shuffled)

        key, epoch_key = jax.random.split(state.key)
        start = ppo_lib.UpdateState(
            state.actor_params, state.critic_params, state.actor_opt_state, state.critic_opt_state,
            learning_rate, jnp.zeros((), bool),
        )
        end, diagnostics = jax.lax.scan(epoch, start, jax.random.split(epoch_key, ppo.update_epochs))
        actor_params, actor_opt_state = end.actor_params, end.actor_opt_state
        extra = {}
        if cfg.plasticity.redo_interval > 0:
            key, redo_key = jax.random.split(key)
            actor_params, actor_opt_state, extra["redo_recycled_fraction"] = jax.lax.cond(
                (state.update_step + 1) % cfg.plasticity.redo_interval == 0,
                lambda p, o: plasticity.recycle_dormant(
                    nets.actor, nets.optimizer, p, o, batch.obs, redo_key, cfg.plasticity.redo_tau
                ),
                lambda p, o: (p, o, jnp.zeros((), jnp.float32)),
                actor_params, actor_opt_state,
            )
        state = state.replace(
            actor_params=actor_params, critic_params=end.critic_params,
            actor_opt_state=actor_opt_state, critic_opt_state=end.critic_opt_state,
            learning_rate=end.learning_rate if ppo.lr_schedule == "adaptive" else state.learning_rate,
            update_step=state.update_step + 1, key=key,
        )
        metrics = {name: jnp.mean(value) for name, value in {**diagnostics, **extra}.items()}
        metrics["learning_rate_end"] = end.learning_rate
        return state, (metrics, jnp.sum(episodes, axis=0))

    return update


def make_chunk_fn(env: Env, nets: Networks, cfg: Config, updates_per_chunk: int, total_updates: int) -> Callable:
    """`updates_per_chunk` PPO updates for one seed; returns the new state and the chunk's summary metrics."""
    update = make_update_fn(env, nets, cfg, total_updates)

    def chunk(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        state, (metrics, episodes) = jax.lax.scan(update, state, None, length=updates_per_chunk)
        summary = {name: jnp.mean(value) for name, value in metrics.items()}
        summary["learning_rate_end"] = metrics["learning_rate_end"][-1]
        count, return_sum, success_sum = jnp.sum(episodes, axis=0)
        summary["train_episodes"] = count
        summary["train_return"] = jnp.where(count > 0, return_sum / jnp.maximum(count, 1.0), jnp.nan)
        summary["train_success"] = jnp.where(count > 0, success_sum / jnp.maximum(count, 1.0), jnp.nan)
        return state, summary

    return chunk


def make_eval_fn(env: Env, nets: Networks, cfg: Config) -> Callable:
    """Deterministic evaluation (mean action) of `cfg.eval.episodes` parallel episodes of one task, one seed.

    `env` is the padded task without auto-reset; an episode's return counts rewards up to its first `done`, and its
    success is the task's success flag at that step.
    """
    ppo = cfg.ppo
    episodes = cfg.eval.episodes
    episodic = EpisodeWrapper(env)

    def evaluate(actor_params: PyTree, obs_stats: RunningStats, key: jax.Array) -> dict[str, jax.Array]:
        state = jax.vmap(episodic.reset)(jax.random.split(key, episodes))

        def step(carry, _):
            state, active, ret, length, success = carry
            obs = policy_obs(ppo, obs_stats, state.obs)
            action = jnp.clip(nets.actor.apply(actor_params, obs).mean, -1.0, 1.0)
            state = jax.vmap(episodic.step)(state, action)
            ret = ret + jnp.where(active, state.reward, 0.0)
            length = length + active
            ended = active & (state.done > 0.5)
            success = jnp.where(ended, state.info["success"], success)
            return (state, active & ~ended, ret, length, success), None

        zeros = jnp.zeros(episodes, jnp.float32)
        init = (state, jnp.ones(episodes, bool), zeros, zeros, zeros)
        (_, _, ret, length, success), _ = jax.lax.scan(step, init, None, length=env.episode_length)
        return {"eval_return": ret.mean(), "eval_length": length.mean(), "eval_success": success.mean()}

    return evaluate


@dataclass
class TaskPlan:
    """How a task's budget splits into chunks (the unit of compilation reuse, evaluation and logging)."""

    batch_size: int  # env steps per update and seed
    updates_per_chunk: int
    n_chunks: int

    @property
    def total_updates(self) -> int:
        return self.updates_per_chunk * self.n_chunks

    @property
    def steps_per_chunk(self) -> int:
        return self.updates_per_chunk * self.batch_size

    @property
    def total_steps(self) -> int:
        return self.total_updates * self.batch_size


def plan_task(cfg: Config) -> TaskPlan:
    """Round the eval interval to whole updates and the task budget up to whole chunks."""
    batch_size = cfg.num_envs * cfg.ppo.n_steps
    updates_per_chunk = max(1, round(cfg.eval.interval / batch_size))
    total_updates = -(-cfg.total_timesteps // batch_size)
    n_chunks = max(1, -(-total_updates // updates_per_chunk))
    return TaskPlan(batch_size, updates_per_chunk, n_chunks)


class TaskPrograms(NamedTuple):
    env: Env  # padded, episodic, auto-resetting task as the trainer sees it
    init: Callable  # keys [S] -> TrainState [S]
    chunk: Callable  # TrainState [S] -> (TrainState [S], metrics [S])
    evaluate: Callable  # (actor_params [S], obs_stats [S], keys [S]) -> metrics [S]


def build_task_programs(task: Env, nets: Networks, cfg: Config, obs_size: int, action_size: int) -> TaskPrograms:
    plan = plan_task(cfg)
    env = training_env(task, obs_size, action_size)
    eval_env = PadWrapper(task, obs_size, action_size)
    init = jax.jit(jax.vmap(lambda key: init_train_state(key, env, nets, cfg)))
    chunk = jax.jit(jax.vmap(make_chunk_fn(env, nets, cfg, plan.updates_per_chunk, plan.total_updates)))
    evaluate = jax.jit(jax.vmap(make_eval_fn(eval_env, nets, cfg)))
    return TaskPrograms(env, init, chunk, evaluate)


def make_tasks(cfg: Config) -> list[Env]:
    kwargs: dict[str, Any] = {}
    if cfg.episode_length is not None:
        kwargs["episode_length"] = cfg.episode_length
    if cfg.physics != "mjx":
        kwargs["physics"] = cfg.physics
    tasks = []
    for name in cfg.tasks:
        try:
            tasks.append(envs.make(name, **kwargs))
        except (ValueError, TypeError, NotImplementedError) as error:
            raise ConfigError(f"tasks: cannot build {name!r} with {kwargs}: {error}") from error
    return tasks


@dataclass
class RunResult:
    state: TrainState  # final carry, leading seed axis
    seeds: list[int]
    tasks: list[str]
    eval_return: np.ndarray  # [trained task i, evaluated task j, seed]; NaN where j > i
    eval_success: np.ndarray
    metrics: list[dict[str, Any]] = field(default_factory=list)


Logger = Callable[[dict[str, Any]], None]
Progress = Callable[[int, str], None]


class Trainer:
    """`make_train(cfg)` returns one: builds the tasks and their compiled programs; calling it trains the sequence."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.seeds = seed_list(cfg)
        self.tasks = make_tasks(cfg)
        self.obs_size = max(task.observation_size for task in self.tasks)
        self.action_size = max(task.action_size for task in self.tasks)
        self.nets = build_networks(cfg, self.action_size)
        self.plan = plan_task(cfg)
        self._programs: dict[int, TaskPrograms] = {}
        self._compiled: dict[int, Callable] = {}
        self._compile_seconds: dict[int, float] = {}

    def programs(self, task_index: int) -> TaskPrograms:
        if task_index not in self._programs:
            self._programs[task_index] = build_task_programs(
                self.tasks[task_index], self.nets, self.cfg, self.obs_size, self.action_size
            )
        return self._programs[task_index]

    def task_keys(self, task_index: int) -> jax.Array:
        return jnp.stack([task_key(seed, task_index) for seed in self.seeds])

    def eval_keys(self, task_index: int, chunk: int) -> jax.Array:
        # Independent of the training keys, so evaluating never changes what training does.
        return jnp.stack([jax.random.fold_in(task_key(seed, task_index), 1_000_003 + chunk) for seed in self.seeds])

    def start_task(self, task_index: int, previous: Optional[TrainState]) -> TrainState:
        """The state a task starts from: fresh, then what `cfg.carry` keeps from the previous task's final state."""
        fresh = self.programs(task_index).init(self.task_keys(task_index))
        return fresh if previous is None else inherit(previous, fresh, self.cfg)

    def compiled_chunk(self, task_index: int, state: TrainState) -> tuple[Callable, float]:
        """The task's chunk program compiled ahead of time for `state`'s shapes, and the seconds compiling took."""
        if task_index not in self._compiled:
            tick = time.perf_counter()
            self._compiled[task_index] = self.programs(task_index).chunk.lower(state).compile()
            self._compile_seconds[task_index] = time.perf_counter() - tick
        return self._compiled[task_index], self._compile_seconds[task_index]

    @property
    def total_chunks(self) -> int:
        return len(self.tasks) * self.plan.n_chunks

    def __call__(self, logger: Optional[Logger] = None, progress: Optional[Progress] = None) -> RunResult:
        """Train the whole sequence. `logger(row)` gets every per-seed, per-chunk metrics row; `progress(done,
        message)` is told when a task compiles and after every chunk."""
        cfg, seeds, plan = self.cfg, self.seeds, self.plan
        n_tasks = len(self.tasks)
        eval_return = np.full((n_tasks, n_tasks, len(seeds)), np.nan)
        eval_success = np.full((n_tasks, n_tasks, len(seeds)), np.nan)
        rows: list[dict[str, Any]] = []
        state: Optional[TrainState] = None
        started = time.perf_counter()
        for task_index, task in enumerate(self.tasks):
            programs = self.programs(task_index)
            state = self.start_task(task_index, state)
            if progress is not None:
                progress(task_index * plan.n_chunks, f"compiling {task.name}")
            chunk_program, compile_seconds = self.compiled_chunk(task_index, state)
            for chunk in range(plan.n_chunks):
                tick = time.perf_counter()
                state, summary = chunk_program(state)
                summary = jax.device_get(summary)
                chunk_seconds = time.perf_counter() - tick
                evaluation = jax.device_get(
                    programs.evaluate(state.actor_params, state.obs_stats, self.eval_keys(task_index, chunk))
                )
                steps = (chunk + 1) * plan.steps_per_chunk
                for s, seed in enumerate(seeds):
                    row = {
                        "task": task.name,
                        "task_index": task_index,
                        "chunk": chunk,
                        "seed": seed,
                        "env_steps": steps,
                        "total_env_steps": task_index * plan.total_steps + steps,
                        **{k: float(v[s]) for k, v in summary.items()},
                        **{k: float(v[s]) for k, v in evaluation.items()},
                        "steps_per_s": plan.steps_per_chunk * len(seeds) / chunk_seconds,
                        "chunk_seconds": chunk_seconds,
                        "compile_seconds": compile_seconds,
                        "elapsed_seconds": time.perf_counter() - started,
                    }
                    if not task.has_success:
                        row["train_success"] = row["eval_success"] = None
                    rows.append(row)
                    if logger is not None:
                        logger(row)
                if progress is not None:
                    done = task_index * plan.n_chunks + chunk + 1
                    returns = [r["eval_return"] for r in rows[-len(seeds):]]
                    progress(done, f"{task.name} eval return {np.mean(returns):.1f}, {rows[-1]['steps_per_s']:.0f} steps/s")
            for seen in range(task_index + 1):
                evaluation = jax.device_get(
                    self.programs(seen).evaluate(
                        state.actor_params, state.obs_stats, self.eval_keys(seen, 10_000 + task_index)
                    )
                )
                eval_return[task_index, seen] = evaluation["eval_return"]
                eval_success[task_index, seen] = evaluation["eval_success"]
        return RunResult(state, seeds, list(cfg.tasks), eval_return, eval_success, rows)


def make_train(cfg: Config) -> Trainer:
    """Build the tasks and networks of a run; `make_train(cfg)()` trains the whole sequence."""
    return Trainer(cfg)
