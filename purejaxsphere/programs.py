"""The compiled programs of a task: state, rollout, PPO update, chunk, evaluation.

Per task, one jitted program advances every member (seed, or sweep value x seed) by one chunk of PPO updates:
    jit(vmap over members(lax.scan over updates(rollout scan over vmapped envs -> GAE -> epochs x minibatches)))
(the member vmap is `map_members`: one member runs without it). `build_task_programs` compiles a task's programs;
the Python loop that calls them chunk after chunk is purejaxsphere/driver.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

import envs
from envs.core import Env, EpisodeWrapper, PadWrapper, State, physics_unstable, training_env
from purejaxsphere import metrics as metrics_lib
from purejaxsphere import plasticity
from purejaxsphere import ppo as ppo_lib
from purejaxsphere.config import Config, ConfigError, PPOConfig, with_value
from purejaxsphere.networks import Actor, Critic, gaussian_log_prob
from purejaxsphere.normalize import RunningStats, init_stats, normalize, update_stats

PyTree = Any


@struct.dataclass
class TrainState:
    """Everything that changes during training, for one member of the run: a seed, or a (sweep value, seed) pair
    (a leading member axis when vmapped)."""

    learner: ppo_lib.Learner  # parameters, optimizer states and learning rate: what the minibatch steps change
    obs_stats: RunningStats
    env_state: State
    key: jax.Array
    update_step: jax.Array  # PPO updates done in the current task
    actor_init_params: PyTree  # the run's first actor initialization (L2-init's theta_0), carried across tasks
    sweep_value: jax.Array  # this member's value of cfg.sweep.key (0.0 and unused without a sweep)

    # Read-only views of the learner, for the evaluators and tests that only need one part of it.
    @property
    def actor_params(self) -> PyTree:
        return self.learner.actor_params

    @property
    def critic_params(self) -> PyTree:
        return self.learner.critic_params

    @property
    def actor_opt_state(self) -> PyTree:
        return self.learner.actor_opt_state

    @property
    def critic_opt_state(self) -> PyTree:
        return self.learner.critic_opt_state

    @property
    def learning_rate(self) -> jax.Array:
        return self.learner.learning_rate


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
    learning_rate = jnp.asarray(member_config(cfg, sweep_value).ppo.learning_rate, jnp.float32)
    learner = ppo_lib.Learner(actor_params, critic_params, nets.optimizer.init(actor_params),
                              nets.optimizer.init(critic_params), learning_rate)
    return TrainState(
        learner=learner,
        obs_stats=init_stats(env.observation_size),
        env_state=jax.vmap(env.reset)(jax.random.split(env_key, cfg.num_envs)),
        key=key,
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
    state, learner = fresh, fresh.learner
    if carry.params:
        actor_params = previous.actor_params
        if plasticity.uses_shrink_perturb(pla):
            actor_params = plasticity.shrink_perturb(actor_params, fresh.actor_params, pla.shrink, pla.perturb)
        learner = learner._replace(actor_params=actor_params, critic_params=previous.critic_params)
        state = state.replace(actor_init_params=previous.actor_init_params)
    if carry.optimizer:
        learner = learner._replace(actor_opt_state=previous.actor_opt_state,
                                   critic_opt_state=previous.critic_opt_state)
    if carry.normalizer:
        state = state.replace(obs_stats=previous.obs_stats)
    return state.replace(learner=learner)


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



def update_batch(critic_apply: Callable, ppo: PPOConfig, state: TrainState, traj: ppo_lib.Transition) -> ppo_lib.Batch:
    """A rollout's samples for the update phase, flattened over time and envs: GAE advantages and value targets."""
    value, reward = bootstrap(critic_apply, state.critic_params, traj, ppo.gamma)
    last_value = critic_apply(state.critic_params, policy_obs(ppo, state.obs_stats, state.env_state.obs))
    advantages, targets = ppo_lib.compute_gae(reward, value, traj.done, last_value, ppo.gamma, ppo.gae_lambda)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    return ppo_lib.Batch(flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(advantages), flat(targets))


def run_epochs(minibatch_step: Callable, start: ppo_lib.UpdateState, batch: ppo_lib.Batch, key: jax.Array,
               n_epochs: int, n_minibatches: int) -> tuple[ppo_lib.UpdateState, dict[str, jax.Array]]:
    """`n_epochs` passes over `batch`, each reshuffled and split into `n_minibatches` minibatch steps (one scan)."""
    size = jax.tree.leaves(batch)[0].shape[0]

    def epoch(carry: ppo_lib.UpdateState, key: jax.Array):
        perm = jax.random.permutation(key, size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape((n_minibatches, -1) + x.shape[1:]), batch)
        return jax.lax.scan(minibatch_step, carry, shuffled)

    return jax.lax.scan(epoch, start, jax.random.split(key, n_epochs))


def maybe_recycle(nets: Networks, cfg: Config, learner: ppo_lib.Learner, obs: jax.Array, update_step: jax.Array,
                  key: jax.Array) -> tuple[ppo_lib.Learner, dict[str, jax.Array], jax.Array]:
    """ReDo (`plasticity.recycle_dormant`) after every `plasticity.redo_interval`-th update; a no-op without it.
    Returns (learner, {"redo_recycled_fraction"} or {}, the key left)."""
    pla = cfg.plasticity
    if pla.redo_interval <= 0:
        return learner, {}, key
    key, redo_key = jax.random.split(key)
    params, opt_state, fraction = jax.lax.cond(
        (update_step + 1) % pla.redo_interval == 0,
        lambda p, o: plasticity.recycle_dormant(nets.actor, nets.optimizer, p, o, obs, redo_key, pla.redo_tau),
        lambda p, o: (p, o, jnp.zeros((), jnp.float32)),
        learner.actor_params, learner.actor_opt_state,
    )
    return learner._replace(actor_params=params, actor_opt_state=opt_state), {"redo_recycled_fraction": fraction}, key


def make_update_fn(env: Env, nets: Networks, cfg: Config, total_updates: int) -> Callable:
    """One PPO update for one member: rollout of n_steps over num_envs, GAE, epochs x minibatches."""
    n_minibatches = cfg.num_envs * cfg.ppo.n_steps // cfg.ppo.minibatch_size
    rollout = make_rollout_fn(env, nets, cfg)

    def update(state: TrainState, _: Any = None):
        # The swept hyperparameter (if any) is this member's traced value; everything else is static.
        member = member_config(cfg, state.sweep_value)
        ppo = member.ppo
        state, (traj, episodes) = rollout(state)
        batch = update_batch(nets.critic.apply, ppo, state, traj)
        adaptive = ppo.lr_schedule == "adaptive"
        learning_rate = state.learning_rate if adaptive else ppo_lib.linear_learning_rate(
            ppo, state.update_step / total_updates)
        minibatch_step = partial(
            ppo_lib.minibatch_update, actor_apply=nets.actor.apply, critic_apply=nets.critic.apply,
            optimizer=nets.optimizer, ppo=ppo, sphere_cfg=member.sphere, plasticity_cfg=cfg.plasticity,
            reference_params=state.actor_init_params,
        )
        key, epoch_key = jax.random.split(state.key)
        start = ppo_lib.UpdateState(state.learner._replace(learning_rate=learning_rate), jnp.zeros((), bool))
        end, diagnostics = run_epochs(minibatch_step, start, batch, epoch_key, ppo.update_epochs, n_minibatches)
        learner, extra, key = maybe_recycle(nets, cfg, end.learner, batch.obs, state.update_step, key)
        if not adaptive:  # the carried rate is the adaptive rule's; the schedule is a function of update_step
            learner = learner._replace(learning_rate=state.learning_rate)
        state = state.replace(learner=learner, update_step=state.update_step + 1, key=key)
        metrics = {name: jnp.mean(value) for name, value in {**diagnostics, **extra}.items()}
        metrics["learning_rate_end"] = end.learner.learning_rate
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
    """`updates_per_chunk` PPO updates for one member; returns the new state and the chunk's summary metrics.

    The chunk optionally takes `n_updates`, how many of its updates to run (a task's last chunk can be shorter:
    `TaskPlan`); None runs all of them."""
    update = make_update_fn(env, nets, cfg, total_updates)

    def chunk(state: TrainState, n_updates: jax.Array | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
        resets_before = jnp.sum(state.env_state.info["physics_resets"])
        steps = jnp.arange(updates_per_chunk)
        if n_updates is None:
            state, (metrics, episodes) = jax.lax.scan(update, state, steps)
            active = jnp.ones((updates_per_chunk,), bool)
        else:
            state, (metrics, episodes), active = scan_first(update, state, steps, n_updates)
        summary = {name: masked_mean(value, active) for name, value in metrics.items()}
        summary["learning_rate_end"] = metrics["learning_rate_end"][jnp.sum(active) - 1]
        count, return_sum, success_sum, nonfinite_obs = jnp.sum(episodes, axis=0)
        summary.update(fault_flags(metrics, state, nonfinite_obs))
        # Envs reset after a physics blow-up during this chunk (envs.core.AutoResetWrapper); training goes on.
        resets = jnp.sum(state.env_state.info["physics_resets"]) - resets_before
        summary["physics_resets"] = resets.astype(jnp.float32)
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




class TaskPrograms(NamedTuple):
    env: Env  # padded, episodic, auto-resetting task as the trainer sees it
    init: Callable  # (keys [M], sweep values [M]) -> TrainState [M]
    chunk: Callable  # (TrainState [S], n_updates [] or None) -> (TrainState [S], metrics [S])
    evaluate: Callable  # (actor_params [S], obs_stats [S], keys [S]) -> metrics [S]


def map_members(fn: Callable) -> Callable:
    """`jax.vmap(fn)` over the leading member axis of every argument, except that a single member is computed
    without vmap (squeezed, then given its axis back).

    Why: on XLA:CPU a size-1 vmap is not free. It turns every matmul of the MoE into a batched dot, and a PPO
    minibatch step is measurably slower under it (scripts/profile_update.py; docs/benchmarks.md). Traced per shape
    under jit, so the choice is made once per compiled program.
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

    def chunk(state: TrainState, n_updates: jax.Array | None = None):
        # n_updates is shared by all members (not vmapped): see scan_first.
        return map_members(lambda s: member_chunk(s, n_updates))(state)

    evaluate = jax.jit(map_members(make_eval_fn(eval_env, nets, cfg)))
    return TaskPrograms(env, init, jax.jit(chunk), evaluate)


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

