"""PPO pieces as top-level pure functions: GAE, the clipped surrogate, the value loss, the actor loss with SPHERE,
one minibatch update (actor and critic with separate clipped Adam), and the learning-rate rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxsphere import plasticity, sphere
from purejaxsphere.config import PlasticityConfig, PPOConfig, SphereConfig
from purejaxsphere.networks import (
    ActorOutput,
    expert_head_kernel,
    gaussian_entropy,
    gaussian_log_prob,
    routing_entropy,
)

PyTree = Any
ApplyFn = Callable[..., Any]

MIN_ADAPTIVE_LR, MAX_ADAPTIVE_LR = 1e-5, 1e-2


class Transition(NamedTuple):
    """One rollout step of all envs (a leading time axis when stacked)."""

    obs: jax.Array  # normalized observation the action was taken from
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array  # the env's reward
    done: jax.Array
    truncation: jax.Array  # 1.0 where the episode ended by its time limit (bootstrapped from final_obs)
    final_obs: jax.Array  # normalized (with the same statistics as obs) last observation of an ended episode


class Batch(NamedTuple):
    """Flattened samples for the update phase."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    advantage: jax.Array
    target: jax.Array  # value target (advantage + value)


def compute_gae(
    rewards: jax.Array, values: jax.Array, dones: jax.Array, last_value: jax.Array, gamma: float, gae_lambda: float
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimation over a [T, ...] rollout. Returns (advantages, value targets).

    dones[t] = 1 when the episode ended with step t, so V(s_{t+1}) is not bootstrapped across it.
    """

    def backward(carry, step):
        next_advantage, next_value = carry
        reward, value, done = step
        not_done = 1.0 - done
        delta = reward + gamma * next_value * not_done - value
        advantage = delta + gamma * gae_lambda * not_done * next_advantage
        return (advantage, value), advantage

    _, advantages = jax.lax.scan(
        backward, (jnp.zeros_like(last_value), last_value), (rewards, values, dones), reverse=True
    )
    return advantages, advantages + values


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, clip_eps: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """PPO's clipped policy loss. Returns (loss, clip fraction, approx_kl = mean((r - 1) - log r))."""
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = advantage * ratio
    clipped = advantage * jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    clip_fraction = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
    return loss, clip_fraction, approx_kl


def value_loss(values: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error between predicted values and targets (unclipped)."""
    return jnp.mean(jnp.square(targets - values))


def actor_objectives(
    actor_params: PyTree, actor_apply: ApplyFn, batch: Batch, ppo: PPOConfig, sphere_cfg: SphereConfig
) -> tuple[tuple[jax.Array, jax.Array, jax.Array], dict[str, jax.Array]]:
    """The three differentiable actor terms (L_pi, L_SPHERE, L_gating) and diagnostics.

    L_pi = clipped surrogate + ent_coef * (-entropy). L_SPHERE is `sphere.feature_penalty` on `sphere_cfg.target`
    (the last hidden expert layer for SPHERE itself).
    """
    out: ActorOutput = actor_apply(actor_params, batch.obs)
    log_prob = gaussian_log_prob(out.mean, out.log_std, batch.action)
    advantage = batch.advantage
    if ppo.normalize_advantage:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    pg_loss, clip_fraction, approx_kl = clipped_surrogate(log_prob, batch.log_prob, advantage, ppo.clip_eps)
    entropy = gaussian_entropy(out.log_std)
    policy_objective = pg_loss - ppo.ent_coef * entropy
    sphere_loss = sphere.feature_penalty(sphere_cfg.target, out.hidden, out.weights, expert_head_kernel(actor_params))
    gating_loss = (
        sphere.gating_isotropy_penalty(out.weights) if sphere_cfg.gating_ratio > 0 else jnp.zeros((), jnp.float32)
    )
    diagnostics = {
        "policy_loss": pg_loss,
        "entropy": entropy,
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
        "routing_entropy": routing_entropy(out.weights),
    }
    return (policy_objective, sphere_loss, gating_loss), diagnostics


def combine_gradients(vjp_fn: Callable, policy_objective: jax.Array, sphere_loss: jax.Array, gating_loss: jax.Array,
                      sphere_cfg: SphereConfig) -> tuple[PyTree, jax.Array, jax.Array]:
    """The actor gradient of `actor_gradient`'s SPHERE mode from the vjp of (L_pi, L_SPHERE, L_gating), with the
    coefficients it used: (grads, sphere_coef, gating_coef)."""
    one, zero = jnp.ones_like(policy_objective), jnp.zeros_like(policy_objective)
    gating_on = sphere_cfg.gating_ratio > 0
    if sphere_cfg.mode == "grad":
        (policy_grad,) = vjp_fn((one, zero, zero))
        (sphere_grad,) = vjp_fn((zero, one, zero))
        sphere_coef = sphere.norm_ratio_scale(sphere_cfg.ratio, policy_grad, sphere_grad)
        regularizer_grad = sphere.tree_scale(sphere_grad, sphere_coef)
        gating_coef = zero
        if gating_on:
            (gating_grad,) = vjp_fn((zero, zero, one))
            gating_coef = sphere.norm_ratio_scale(sphere_cfg.gating_ratio, policy_grad, gating_grad)
            regularizer_grad = jax.tree.map(
                jnp.add, regularizer_grad, sphere.tree_scale(gating_grad, gating_coef)
            )
        grads = sphere.add_regularizer(policy_grad, regularizer_grad, sphere_cfg.pcgrad)
    else:
        sphere_coef = zero
        if sphere_cfg.mode == "loss":
            sphere_coef = sphere.adaptive_coefficient(sphere_cfg.ratio, policy_objective, sphere_loss)
        gating_coef = zero
        if gating_on:
            gating_coef = sphere.adaptive_coefficient(sphere_cfg.gating_ratio, policy_objective, gating_loss)
        if sphere_cfg.pcgrad and (sphere_cfg.mode == "loss" or gating_on):
            (policy_grad,) = vjp_fn((one, zero, zero))
            (regularizer_grad,) = vjp_fn((zero, sphere_coef, gating_coef))
            grads = sphere.add_regularizer(policy_grad, regularizer_grad, pcgrad=True)
        else:
            (grads,) = vjp_fn((one, sphere_coef, gating_coef))
    return grads, sphere_coef, gating_coef


def actor_gradient(
    actor_params: PyTree,
    actor_apply: ApplyFn,
    batch: Batch,
    ppo: PPOConfig,
    sphere_cfg: SphereConfig,
    plasticity_cfg: PlasticityConfig | None = None,
    reference_params: PyTree | None = None,
) -> tuple[PyTree, dict[str, jax.Array]]:
    """Gradient of the actor objective under the configured SPHERE mode, from one forward pass (vjp).

    With g_pi = grad L_pi, g_S = grad L_SPHERE, g_G = grad L_gating (the gating term only when gating_ratio > 0):
    - off:  g_pi (+ lambda_G g_G)
    - loss: g_pi + lambda_S g_S + lambda_G g_G, each lambda = sg(its ratio x |L_pi| / (its loss + 1e-8))
    - grad: g_pi + s_S g_S + s_G g_G, each s = sg(its ratio x |g_pi| / (|g| + 1e-8)), so each added part has its
            ratio x the norm of g_pi (`sphere.norm_ratio_scale`)
    With `pcgrad`, in every mode the regularizer part (everything after g_pi) is projected off g_pi when the two
    conflict (`sphere.project_conflict`), as in the official code. In every mode the gradient of the parameter
    penalty (`plasticity.param_penalty`: L2-init toward `reference_params`, Parseval) is added last, with its fixed
    coefficients.
    """
    plasticity_cfg = plasticity_cfg or PlasticityConfig()
    (policy_objective, sphere_loss, gating_loss), vjp_fn, diagnostics = jax.vjp(
        lambda p: actor_objectives(p, actor_apply, batch, ppo, sphere_cfg), actor_params, has_aux=True
    )
    grads, sphere_coef, gating_coef = combine_gradients(vjp_fn, policy_objective, sphere_loss, gating_loss,
                                                         sphere_cfg)
    param_penalty = jnp.zeros_like(policy_objective)
    if plasticity.uses_param_penalty(plasticity_cfg):
        param_penalty, penalty_grad = jax.value_and_grad(plasticity.param_penalty)(
            actor_params, reference_params, plasticity_cfg
        )
        grads = jax.tree.map(jnp.add, grads, penalty_grad)
    diagnostics = dict(diagnostics)
    diagnostics.update(
        sphere_loss=sphere_loss,
        sphere_coef=sphere_coef,
        gating_loss=gating_loss,
        gating_coef=gating_coef,
        param_penalty=param_penalty,
    )
    return grads, diagnostics


def make_optimizer(ppo: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the (dynamic) learning rate is applied by `apply_update`."""
    return optax.chain(optax.clip_by_global_norm(ppo.max_grad_norm), optax.scale_by_adam(eps=ppo.adam_eps))


def apply_update(
    optimizer: optax.GradientTransformation, params: PyTree, opt_state: Any, grads: PyTree, learning_rate: jax.Array
) -> tuple[PyTree, Any]:
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - learning_rate * u, params, updates)
    return params, opt_state


def adapt_learning_rate(learning_rate: jax.Array, approx_kl: jax.Array, target_kl: float) -> jax.Array:
    """KL-adaptive rate: /1.5 when approx_kl > 2 target, x1.5 when < target / 2, clipped to [1e-5, 1e-2]."""
    learning_rate = jnp.where(approx_kl > 2.0 * target_kl, learning_rate / 1.5, learning_rate)
    learning_rate = jnp.where(approx_kl < 0.5 * target_kl, learning_rate * 1.5, learning_rate)
    return jnp.clip(learning_rate, MIN_ADAPTIVE_LR, MAX_ADAPTIVE_LR)


def linear_learning_rate(ppo: PPOConfig, progress: jax.Array) -> jax.Array:
    """Linear from learning_rate to final_learning_rate over the first decay_fraction of the task, then constant."""
    fraction = jnp.clip(progress / max(ppo.decay_fraction, 1e-12), 0.0, 1.0)
    return ppo.learning_rate + fraction * (ppo.final_learning_rate - ppo.learning_rate)


class Learner(NamedTuple):
    """What the minibatch steps change: both networks' parameters and optimizer states, and the learning rate."""

    actor_params: PyTree
    critic_params: PyTree
    actor_opt_state: Any
    critic_opt_state: Any
    learning_rate: jax.Array


class UpdateState(NamedTuple):
    """The carry of an update's epochs x minibatches scan."""

    learner: Learner
    stopped: jax.Array  # early_stop schedule: no further updates in this rollout's epochs


def minibatch_update(
    state: UpdateState,
    batch: Batch,
    *,
    actor_apply: ApplyFn,
    critic_apply: ApplyFn,
    optimizer: optax.GradientTransformation,
    ppo: PPOConfig,
    sphere_cfg: SphereConfig,
    plasticity_cfg: PlasticityConfig | None = None,
    reference_params: PyTree | None = None,
) -> tuple[UpdateState, dict[str, jax.Array]]:
    """One PPO(+SPHERE) step on a minibatch: actor and critic each through their own clipped Adam.

    `reference_params` (the actor's initial parameters) is read only by the L2-init penalty.
    """
    learner = state.learner
    actor_grads, diagnostics = actor_gradient(
        learner.actor_params, actor_apply, batch, ppo, sphere_cfg, plasticity_cfg, reference_params
    )

    def critic_objective(params):
        return ppo.vf_coef * value_loss(critic_apply(params, batch.obs), batch.target)

    scaled_value_loss, critic_grads = jax.value_and_grad(critic_objective)(learner.critic_params)
    approx_kl = diagnostics["approx_kl"]
    stopped = state.stopped
    if ppo.lr_schedule == "early_stop":
        stopped = stopped | (approx_kl > 1.5 * ppo.target_kl)
    actor_params, actor_opt_state = apply_update(
        optimizer, learner.actor_params, learner.actor_opt_state, actor_grads, learner.learning_rate
    )
    critic_params, critic_opt_state = apply_update(
        optimizer, learner.critic_params, learner.critic_opt_state, critic_grads, learner.learning_rate
    )
    new = Learner(actor_params, critic_params, actor_opt_state, critic_opt_state, learner.learning_rate)
    if ppo.lr_schedule == "early_stop":
        # Masked (not skipped) so the epoch loop stays one compiled scan: a stopped update leaves everything as it
        # was. Only this schedule can stop: the mask copies every parameter and moment (~10% of a CPU step).
        new = jax.tree.map(lambda n, o: jnp.where(stopped, o, n), new, learner)
    if ppo.lr_schedule == "adaptive":
        new = new._replace(learning_rate=adapt_learning_rate(learner.learning_rate, approx_kl, ppo.target_kl))
    diagnostics = dict(diagnostics)
    diagnostics.update(
        value_loss=scaled_value_loss / ppo.vf_coef,
        learning_rate=learner.learning_rate,
        actor_grad_norm=sphere.global_norm(actor_grads),
        update_applied=1.0 - stopped.astype(jnp.float32),
    )
    return UpdateState(new, stopped), diagnostics
