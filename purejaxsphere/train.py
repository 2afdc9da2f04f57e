"""Compiled task programs and the continual-RL driver.

Per task, one jitted program advances every seed by one chunk of PPO updates:
    jit(vmap over seeds(lax.scan over updates(rollout scan over vmapped envs -> GAE -> epochs x minibatches)))
(the seed vmap is `map_members`: one seed runs without it).
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
from envs.core import Env, EpisodeWrapper, PadWrapper, State, physics_unstable, training_env
from purejaxsphere import metrics as metrics_lib
from purejaxsphere import plasticity
from purejaxsphere import ppo as ppo_lib
from purejaxsphere.checkpoint import Checkpoint, Position
from purejaxsphere.config import Config, ConfigError, PPOConfig, seed_list, sweep_values, with_value
from purejaxsphere.distributed import barrier, make_placement, to_host
from purejaxsphere.networks import Actor, Critic, gaussian_log_prob
from purejaxsphere.normalize import RunningStats, init_stats, normalize, update_stats

PyTree = Any


@struct.dataclass
class TrainState:
    """Everything that changes during training, for one member of the run: a seed, or a (sweep value, seed) pair
    (a leading member axis when vmapped)."""

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
    sweep_value: jax.Array  # this member's value of cfg.sweep.key (0.0 and unused without a sweep)


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
        init_scheme=net.init,
    )
    critic = Critic(tuple(net.critic_hidden_sizes), init_scheme=net.init)
    return Networks(actor, critic, ppo_lib.make_optimizer(cfg.ppo))


def task_key(seed: int, task_index: int) -> jax.Array:
    """The key a seed starts a task with; depends only on (seed, task index), so seeds are independent."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), task_index)


def member_config(cfg: Config, sweep_value: jax.Array) -> Config:
    """The config one member trains with: `cfg` with the swept field set to the member's (traced) value."""
    return with_value(cfg, cfg.sweep.key, sweep_value) if cfg.sweep.key else cfg


def init_train_state(
    key: jax.Array, env: Env, nets: Networks, cfg: Config, sweep_value: Any = 0.0
) -> TrainState:
    """Fresh parameters, optimizer states, normalizer, envs and learning rate for one member."""
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
        learning_rate=jnp.asarray(member_config(cfg, sweep_value).ppo.learning_rate, jnp.float32),
        update_step=jnp.zeros((), jnp.int32),
        actor_init_params=actor_params,
        sweep_value=jnp.asarray(sweep_value, jnp.float32),
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


def deterministic_action(actor: Actor, ppo: PPOConfig, actor_params: PyTree, obs_stats: RunningStats,
                         obs: jax.Array) -> jax.Array:
    """The evaluation action: the actor's mean on the normalized observation, clipped to [-1, 1]."""
    return jnp.clip(actor.apply(actor_params, policy_obs(ppo, obs_stats, obs)).mean, -1.0, 1.0)


def make_rollout_fn(env: Env, nets: Networks, cfg: Config) -> Callable:
    """Collection phase for one seed: n_steps of policy inference + vmapped env step, as one scan.

    Returns (state, (Transition [T, N, ...], episode sums [T, 4] = finished episodes, their returns, successes,
    non-finite observation entries)). Values are not computed here: `bootstrap` does that for the whole
    trajectory in one batched critic call, as Brax's PPO does (two critic calls on N rows per step cost as much
    as the actor on CPU).
    """
    ppo = cfg.ppo
    actor_apply = nets.actor.apply

    def env_step(state: TrainState, _):
        key, action_key = jax.random.split(state.key)
        env_state = state.env_state
        stats = update_stats(state.obs_stats, env_state.obs) if ppo.normalize_obs else state.obs_stats
        obs = policy_obs(ppo, stats, env_state.obs)
        out = actor_apply(state.actor_params, obs)
        action = out.mean + jnp.exp(out.log_std) * jax.random.normal(action_key, out.mean.shape)
        log_prob = gaussian_log_prob(out.mean, out.log_std, action)
        next_env_state = jax.vmap(env.step)(env_state, jnp.clip(action, -1.0, 1.0))
        info = next_env_state.info
        done = next_env_state.done
        transition = ppo_lib.Transition(obs, action, log_prob, next_env_state.reward, done, info["truncation"],
                                        policy_obs(ppo, stats, info["final_obs"]))
        episodes = jnp.stack([
            jnp.sum(done), jnp.sum(done * info["final_return"]), jnp.sum(done * info["final_success"]),
            jnp.sum(~jnp.isfinite(next_env_state.obs)).astype(jnp.float32),  # non-finite observation entries
        ])
        return state.replace(env_state=next_env_state, obs_stats=stats, key=key), (transition, episodes)

    return lambda state: jax.lax.scan(env_step, state, None, length=ppo.n_steps)


def bootstrap(critic_apply: Callable, critic_params: PyTree, traj: ppo_lib.Transition,
              gamma: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(values [T, N], rewards [T, N]) of a trajectory, from one critic call on its observations and final
    observations. Truncated episodes are bootstrapped with the value of their last observation (as SB3 does):
    reward + gamma * V(final obs) where truncation is 1."""
    obs = jnp.concatenate([traj.obs, traj.final_obs])
    values = critic_apply(critic_params, obs.reshape((-1, obs.shape[-1]))).reshape(obs.shape[:-1])
    value, final_value = jnp.split(values, 2)
    return value, traj.reward + gamma * final_value * traj.truncation


def make_update_fn(env: Env, nets: Networks, cfg: Config, total_updates: int) -> Callable:
    """One PPO update for one seed: rollout of n_steps over num_envs, GAE, epochs x minibatches."""
    ppo = cfg.ppo
    actor_apply, critic_apply = nets.actor.apply, nets.critic.apply
    batch_size = cfg.num_envs * ppo.n_steps
    n_minibatches = batch_size // ppo.minibatch_size
    rollout = make_rollout_fn(env, nets, cfg)

    def update(state: TrainState, fault: jax.Array):
        # The swept hyperparameter (if any) is this member's traced value; everything else is static.
        member = member_config(cfg, state.sweep_value)
        ppo = member.ppo
        state, (traj, episodes) = rollout(state)
        value, reward = bootstrap(critic_apply, state.critic_params, traj, ppo.gamma)
        last_value = critic_apply(state.critic_params, policy_obs(ppo, state.obs_stats, state.env_state.obs))
        advantages, targets = ppo_lib.compute_gae(reward, value, traj.done, last_value, ppo.gamma, ppo.gae_lambda)
        flat = lambda x: x.reshape((batch_size,) + x.shape[2:])  # noqa: E731
        # `fault` is 0.0 except when a test injects a NaN into this seed's policy loss (cfg.fault).
        batch = ppo_lib.Batch(
            flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(advantages) + fault, flat(targets)
        )
        if ppo.lr_schedule == "adaptive":
            learning_rate = state.learning_rate
        else:
            learning_rate = ppo_lib.linear_learning_rate(ppo, state.update_step / total_updates)
        minibatch_step = lambda carry, mb: ppo_lib.minibatch_update(  # noqa: E731
            carry, mb, actor_apply=actor_apply, critic_apply=critic_apply, optimizer=nets.optimizer,
            ppo=ppo, sphere_cfg=member.sphere, plasticity_cfg=cfg.plasticity, reference_params=state.actor_init_params,
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


def all_finite(tree: PyTree) -> jax.Array:
    """True when every leaf of `tree` is finite (one fused reduction)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def fault_flags(metrics: dict[str, jax.Array], state: TrainState, nonfinite_obs: jax.Array) -> dict[str, jax.Array]:
    """Cheap in-program checks (no host sync): 1.0 where a quantity went non-finite during the chunk."""
    losses = jnp.stack([value for name, value in metrics.items() if name.endswith("loss")])
    return {
        "fault_loss": (~jnp.all(jnp.isfinite(losses))).astype(jnp.float32),
        "fault_grad": (~jnp.all(jnp.isfinite(metrics["actor_grad_norm"]))).astype(jnp.float32),
        "fault_params": (~all_finite((state.actor_params, state.critic_params))).astype(jnp.float32),
        "fault_obs": (nonfinite_obs > 0).astype(jnp.float32),
    }


FAULT_KEYS = ("fault_loss", "fault_grad", "fault_params", "fault_obs")
PROBE_STEPS = 16
PROBE_KEY = 20_261_129  # fixed: the probe batch is the same at every chunk, for every seed and algorithm


def probe_observations(env: Env, n_states: int) -> jax.Array:
    """A fixed probe batch [n_states, obs] of raw observations for the diagnostics: `n_states` envs reset from a
    fixed key and driven by uniform random actions; env i contributes its observation after i mod 16 steps, so the
    batch spans the start of an episode rather than only reset states."""
    reset_key, action_key = jax.random.split(jax.random.PRNGKey(PROBE_KEY))
    state = jax.vmap(env.reset)(jax.random.split(reset_key, n_states))

    def step(state: State, key: jax.Array):
        action = jax.random.uniform(key, (n_states, env.action_size), minval=-1.0, maxval=1.0)
        state = jax.vmap(env.step)(state, action)
        return state, state.obs

    _, trajectory = jax.lax.scan(step, state, jax.random.split(action_key, PROBE_STEPS))  # [steps, n, obs]
    return trajectory[jnp.arange(n_states) % PROBE_STEPS, jnp.arange(n_states)]


def scan_first(step: Callable, state: PyTree, xs: jax.Array, n: jax.Array) -> tuple[PyTree, PyTree, jax.Array]:
    """`lax.scan(step, state, xs)` that runs only the first `n` steps (`n` traced); the others pass the state
    through and output zeros. Returns (state, outputs, active mask [len(xs)]). One compiled program then serves a
    task's full chunks and its shorter last chunk. `n` must not be batched under vmap, so that the cond stays a
    cond (skipped updates cost nothing) instead of a select that computes both branches."""
    length = xs.shape[0]
    outputs = jax.eval_shape(step, state, xs[0])[1]

    def skip(carry: PyTree, _: jax.Array) -> tuple[PyTree, PyTree]:
        return carry, jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), outputs)

    def body(carry: PyTree, indexed: tuple[jax.Array, jax.Array]) -> tuple[PyTree, PyTree]:
        index, x = indexed
        return jax.lax.cond(index < n, step, skip, carry, x)

    state, out = jax.lax.scan(body, state, (jnp.arange(length), xs))
    return state, out, jnp.arange(length) < n


def masked_mean(values: jax.Array, active: jax.Array) -> jax.Array:
    """Mean over the leading axis of the entries where `active` (a non-finite active entry stays visible)."""
    mask = active.reshape(active.shape + (1,) * (values.ndim - 1))
    return jnp.sum(jnp.where(mask, values, 0), axis=0) / jnp.sum(active)


def make_chunk_fn(env: Env, nets: Networks, cfg: Config, updates_per_chunk: int, total_updates: int) -> Callable:
    """`updates_per_chunk` PPO updates for one seed; returns the new state and the chunk's summary metrics.

    The chunk takes `fault`, a scalar added to the advantages of every update: 0.0, or NaN to inject a numerical
    fault into this seed's policy loss (the fault-handling tests use it; see cfg.fault), and optionally
    `n_updates`, how many of the chunk's updates to run (a task's last chunk can be shorter: `TaskPlan`);
    None runs all of them."""
    update = make_update_fn(env, nets, cfg, total_updates)

    def chunk(state: TrainState, fault: jax.Array,
              n_updates: Optional[jax.Array] = None) -> tuple[TrainState, dict[str, jax.Array]]:
        faults = jnp.full((updates_per_chunk,), fault, jnp.float32)
        resets_before = jnp.sum(state.env_state.info["physics_resets"])
        if n_updates is None:
            state, (metrics, episodes) = jax.lax.scan(update, state, faults)
            active = jnp.ones((updates_per_chunk,), bool)
        else:
            state, (metrics, episodes), active = scan_first(update, state, faults, n_updates)
        summary = {name: masked_mean(value, active) for name, value in metrics.items()}
        summary["learning_rate_end"] = metrics["learning_rate_end"][jnp.sum(active) - 1]
        count, return_sum, success_sum, nonfinite_obs = jnp.sum(episodes, axis=0)
        summary.update(fault_flags(metrics, state, nonfinite_obs))
        # Envs reset after a physics blow-up during this chunk (envs.core.AutoResetWrapper); training goes on.
        summary["physics_resets"] = (jnp.sum(state.env_state.info["physics_resets"]) - resets_before).astype(jnp.float32)
        if cfg.diagnostics.enabled:
            diag = cfg.diagnostics
            probe = policy_obs(cfg.ppo, state.obs_stats, probe_observations(env, diag.probe_states))
            summary.update(metrics_lib.spectral_diagnostics(
                nets.actor, state.actor_params, probe, entk_states=diag.entk_states, dormant_tau=diag.dormant_tau
            ))
        summary["train_episodes"] = count
        summary["train_return"] = jnp.where(count > 0, return_sum / jnp.maximum(count, 1.0), jnp.nan)
        summary["train_success"] = jnp.where(count > 0, success_sum / jnp.maximum(count, 1.0), jnp.nan)
        return state, summary

    return chunk


def make_eval_fn(env: Env, nets: Networks, cfg: Config) -> Callable:
    """Deterministic evaluation (mean action) of `cfg.eval.episodes` parallel episodes of one task, one seed.

    `env` is the padded task without auto-reset; an episode's return counts rewards up to its first `done`, and its
    success is the task's success flag at that step. A physics blow-up ends the episode there (its reward and
    success are not counted), as in training (envs.core.AutoResetWrapper).
    """
    ppo = cfg.ppo
    episodes = cfg.eval.episodes
    episodic = EpisodeWrapper(env)

    def evaluate(actor_params: PyTree, obs_stats: RunningStats, key: jax.Array) -> dict[str, jax.Array]:
        state = jax.vmap(episodic.reset)(jax.random.split(key, episodes))

        def step(carry, _):
            state, active, ret, length, success = carry
            action = deterministic_action(nets.actor, ppo, actor_params, obs_stats, state.obs)
            state = jax.vmap(episodic.step)(state, action)
            unstable = jax.vmap(physics_unstable)(state)  # a blow-up ends the episode: no reward, no success
            ret = ret + jnp.where(active & ~unstable, state.reward, 0.0)
            length = length + active
            ended = active & ((state.done > 0.5) | unstable)
            success = jnp.where(ended, jnp.where(unstable, 0.0, state.info["success"]), success)
            return (state, active & ~ended, ret, length, success), None

        zeros = jnp.zeros(episodes, jnp.float32)
        init = (state, jnp.ones(episodes, bool), zeros, zeros, zeros)
        (_, _, ret, length, success), _ = jax.lax.scan(step, init, None, length=env.episode_length)
        return {"eval_return": ret.mean(), "eval_length": length.mean(), "eval_success": success.mean()}

    return evaluate


@dataclass(frozen=True)
class TaskPlan:
    """How a task's budget splits into chunks (the unit of compilation reuse, evaluation and logging).

    A task trains `total_updates` PPO updates (the budget rounded up to whole updates, so never a whole update past
    it), in chunks of `updates_per_chunk`; the last chunk runs what is left, inside the same compiled program."""

    batch_size: int  # env steps per update and seed
    updates_per_chunk: int
    n_chunks: int
    total_updates: int

    def updates_in_chunk(self, chunk: int) -> int:
        return min(self.updates_per_chunk, self.total_updates - chunk * self.updates_per_chunk)

    def steps_after(self, chunks_done: int) -> int:
        """Env steps per seed trained once `chunks_done` chunks of the task are done."""
        return min(chunks_done * self.updates_per_chunk, self.total_updates) * self.batch_size

    @property
    def steps_per_chunk(self) -> int:
        """Env steps per seed of a full chunk."""
        return self.updates_per_chunk * self.batch_size

    @property
    def total_steps(self) -> int:
        return self.total_updates * self.batch_size


def plan_task(cfg: Config) -> TaskPlan:
    """The task budget rounded up to whole updates; chunks of `eval.interval` rounded to whole updates, and no
    longer than the budget."""
    batch_size = cfg.num_envs * cfg.ppo.n_steps
    total_updates = -(-cfg.total_timesteps // batch_size)
    updates_per_chunk = min(max(1, round(cfg.eval.interval / batch_size)), total_updates)
    n_chunks = -(-total_updates // updates_per_chunk)
    return TaskPlan(batch_size, updates_per_chunk, n_chunks, total_updates)


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


class TaskPrograms(NamedTuple):
    env: Env  # padded, episodic, auto-resetting task as the trainer sees it
    init: Callable  # (keys [M], sweep values [M]) -> TrainState [M]
    chunk: Callable  # (TrainState [S], fault [S], n_updates [] or None) -> (TrainState [S], metrics [S])
    evaluate: Callable  # (actor_params [S], obs_stats [S], keys [S]) -> metrics [S]


def map_members(fn: Callable) -> Callable:
    """`jax.vmap(fn)` over the leading member axis of every argument, except that a single member is computed
    without vmap (squeezed, then given its axis back).

    Why: on XLA:CPU a size-1 vmap is not free. It turns every matmul of the MoE into a batched dot, and a PPO
    minibatch step measured 18.6 vs 12.9 ms (scripts/profile_update.py, 2026-11-30). Traced per shape under jit,
    so the choice is made once per compiled program.
    """
    vmapped = jax.vmap(fn)

    def mapped(*args: Any) -> Any:
        if {leaf.shape[0] for leaf in jax.tree.leaves(args)} != {1}:
            return vmapped(*args)
        out = fn(*jax.tree.map(lambda leaf: leaf[0], args))
        return jax.tree.map(lambda leaf: jnp.expand_dims(leaf, 0), out)

    return mapped


def build_task_programs(task: Env, nets: Networks, cfg: Config, obs_size: int, action_size: int) -> TaskPrograms:
    plan = plan_task(cfg)
    env = training_env(task, obs_size, action_size)
    eval_env = PadWrapper(task, obs_size, action_size)
    init = jax.jit(map_members(lambda key, value: init_train_state(key, env, nets, cfg, value)))
    member_chunk = make_chunk_fn(env, nets, cfg, plan.updates_per_chunk, plan.total_updates)

    def chunk(state: TrainState, fault: jax.Array, n_updates: Optional[jax.Array] = None):
        # n_updates is shared by all members (not vmapped): see scan_first.
        return map_members(lambda s, f: member_chunk(s, f, n_updates))(state, fault)

    chunk = jax.jit(chunk)
    evaluate = jax.jit(map_members(make_eval_fn(eval_env, nets, cfg)))
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
    seeds: list[int]  # per member: the seed (repeated for each sweep value)
    tasks: list[str]
    eval_return: np.ndarray  # [trained task i, evaluated task j, seed]; NaN where j > i or the seed was dropped
    eval_success: np.ndarray
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the rows logged by this call
    dropped: list[int] = field(default_factory=list)  # members (indices) dropped after a numerical fault
    position: Optional[Position] = None  # where training stopped
    interrupted: bool = False  # stopped early on request (signal); resume from the last checkpoint
    sweep_values: list[Optional[float]] = field(default_factory=list)  # per member; None without a sweep
    sweep_key: Optional[str] = None

    @property
    def dropped_seeds(self) -> list[int]:
        return [self.seeds[m] for m in self.dropped]


class NumericalFault(RuntimeError):
    """A seed's losses, gradients, parameters or observations went non-finite (and cfg.fault.on_nan is "stop")."""


Logger = Callable[[dict[str, Any]], None]
Progress = Callable[[int, str], None]
ChunkHook = Callable[[Checkpoint], None]


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

    def start_task(self, task_index: int, previous: Optional[TrainState]) -> TrainState:
        """The state a task starts from: fresh, then what `cfg.carry` keeps from the previous task's final state."""
        fresh = self.place(self.fresh_state(task_index))  # placed first: inherit's arithmetic sees one sharding
        return fresh if previous is None else self.place(inherit(previous, fresh, self.cfg))

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
            state, self.fault_vector(task_index, -1), self.chunk_updates(0)).compile()
        # Several hosts: the sharded program holds collectives, whose first use fails unless every host joins within
        # 30 s (CPU/gloo); a host can be minutes behind, still compiling.
        barrier("purejaxsphere.chunk_compiled")
        return self._compiled[name], time.perf_counter() - tick

    def chunk_updates(self, chunk: int) -> jax.Array:
        """The number of updates chunk `chunk` of a task runs (the chunk program's `n_updates`), placed."""
        return self.place(jnp.asarray(self.plan.updates_in_chunk(chunk), jnp.int32))

    def fault_vector(self, task_index: int, chunk: int) -> jax.Array:
        """Per-seed values added to the advantages in this chunk: NaN only where cfg.fault injects one."""
        fault = self.cfg.fault
        hit = fault.inject_seed is not None and (fault.inject_task, fault.inject_chunk) == (task_index, chunk)
        values = [np.nan if hit and seed == fault.inject_seed else 0.0 for seed in self.seeds]
        return self.place(jnp.asarray(values, jnp.float32))

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

    def __call__(
        self,
        logger: Optional[Logger] = None,
        progress: Optional[Progress] = None,
        *,
        resume: Optional[Checkpoint] = None,
        on_chunk_end: Optional[ChunkHook] = None,
        stop_requested: Optional[Callable[[], bool]] = None,
        warn: Callable[[str], None] = print,
    ) -> RunResult:
        """Train the whole sequence, or what is left of it after `resume` (a restored checkpoint).

        `logger(row)` gets every per-seed, per-chunk metrics row; `progress(done, message)` is told when a task
        compiles and after every chunk; `on_chunk_end(checkpoint)` is called after every chunk with the carry and
        the evaluation matrix so far (the caller saves checkpoints); when `stop_requested()` turns true, training
        stops after the current chunk (and its hook) with `interrupted=True`. A seed whose state goes non-finite
        stops the run (NumericalFault, before the hook, so the last checkpoint stays the last good one) or, with
        cfg.fault.on_nan = "drop_seed", is frozen at its last finite state and left out of all results."""
        cfg, seeds, plan = self.cfg, self.seeds, self.plan
        n_tasks = len(self.tasks)
        if resume is None:
            eval_return = np.full((n_tasks, n_tasks, len(seeds)), np.nan)
            eval_success = np.full((n_tasks, n_tasks, len(seeds)), np.nan)
            dropped: list[int] = []
            first_task, first_chunk, state = 0, 0, None
        else:
            eval_return, eval_success = resume.eval_return.copy(), resume.eval_success.copy()
            dropped = list(resume.dropped)
            first_task, first_chunk = resume.position.task_index, resume.position.chunks_done
            state = self.place(jax.tree.map(jnp.asarray, resume.state))
            if first_chunk >= plan.n_chunks:  # resumed at a task's end: the next task starts from it
                first_task, first_chunk = first_task + 1, 0
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        position = resume.position if resume is not None else None
        for task_index in range(first_task, n_tasks):
            task = self.tasks[task_index]
            programs = self.programs(task_index)
            if first_chunk == 0 or task_index > first_task:
                state = self.start_task(task_index, state)
            if progress is not None:
                progress(task_index * plan.n_chunks + (first_chunk if task_index == first_task else 0), f"compiling {task.name}")
            chunk_program, compile_seconds = self.compiled_chunk(task_index, state)
            for chunk in range(first_chunk if task_index == first_task else 0, plan.n_chunks):
                tick = time.perf_counter()
                previous = state
                state, summary = chunk_program(state, self.fault_vector(task_index, chunk), self.chunk_updates(chunk))
                state = self.place(state)  # outputs keep the compiled input shardings (a no-op on one device)
                summary = to_host(summary)
                chunk_seconds = time.perf_counter() - tick
                dropped_mask = np.array([m in dropped for m in range(len(seeds))])
                for s, seed in enumerate(seeds):
                    bad = describe_faults(summary, s)
                    if bad and s not in dropped:
                        member = f"seed {seed}" + (f" ({cfg.sweep.key}={self.sweep_values[s]})" if cfg.sweep.key else "")
                        message = (f"non-finite {', '.join(bad)} in {member}, task {task.name} (index {task_index}),"
                                   f" chunk {chunk}")
                        if cfg.fault.on_nan == "stop":
                            raise NumericalFault(message)
                        warn(f"{message}: {member} dropped, the others go on")
                        dropped.append(s)
                        dropped_mask[s] = True
                if dropped_mask.any():  # frozen at the last finite state, so nothing non-finite propagates
                    state = self.place(keep_seeds(dropped_mask, previous, state))
                evaluation = to_host(
                    programs.evaluate(state.actor_params, state.obs_stats, self.eval_keys(task_index, chunk))
                )
                steps = plan.steps_after(chunk + 1)
                chunk_steps = plan.updates_in_chunk(chunk) * plan.batch_size
                live = [s for s in range(len(seeds)) if s not in dropped]
                for s in live:
                    row = {
                        "task": task.name,
                        "task_index": task_index,
                        "chunk": chunk,
                        "seed": seeds[s],
                        **({"sweep_key": cfg.sweep.key, "sweep_value": self.sweep_values[s]} if cfg.sweep.key else {}),
                        "env_steps": steps,
                        "total_env_steps": task_index * plan.total_steps + steps,
                        **{k: float(v[s]) for k, v in summary.items()},
                        **{k: float(v[s]) for k, v in evaluation.items()},
                        "steps_per_s": chunk_steps * len(seeds) / chunk_seconds,
                        "chunk_seconds": chunk_seconds,
                        "compile_seconds": compile_seconds,
                        "elapsed_seconds": time.perf_counter() - started,
                    }
                    if not task.has_success:
                        row["train_success"] = row["eval_success"] = None
                    rows.append(row)
                    if logger is not None:
                        logger(row)
                task_final = chunk == plan.n_chunks - 1
                if task_final:
                    eval_return[task_index], eval_success[task_index] = self.evaluate_seen(task_index, state)
                    eval_return[:, :, dropped_mask] = eval_success[:, :, dropped_mask] = np.nan
                position = Position(task_index, chunk + 1)
                if on_chunk_end is not None:
                    on_chunk_end(Checkpoint(position, state, eval_return, eval_success, list(dropped), task_final))
                if progress is not None:
                    done = task_index * plan.n_chunks + chunk + 1
                    returns = [rows[-i]["eval_return"] for i in range(1, len(live) + 1)] if live else [np.nan]
                    progress(done, f"{task.name} eval return {np.mean(returns):.1f}, {chunk_steps * len(seeds) / chunk_seconds:.0f} steps/s")
                if stop_requested is not None and stop_requested() and not (task_final and task_index == n_tasks - 1):
                    return RunResult(state, seeds, list(cfg.tasks), eval_return, eval_success, rows, dropped,
                                     position, interrupted=True, sweep_values=self.sweep_values,
                                     sweep_key=cfg.sweep.key)
            first_chunk = 0
        return RunResult(state, seeds, list(cfg.tasks), eval_return, eval_success, rows, dropped, position,
                         sweep_values=self.sweep_values, sweep_key=cfg.sweep.key)


def make_train(cfg: Config) -> Trainer:
    """Build the tasks and networks of a run; `make_train(cfg)()` trains the whole sequence."""
    return Trainer(cfg)
