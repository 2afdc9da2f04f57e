"""PPO (+SPHERE, Top-K MoE) learns: on Brax's inverted double pendulum a short CPU budget beats the untrained policy;
on HumanoidBench h1_stand (C MuJoCo physics) a short run improves the return of the policy it trains (slow).

Measured (2 seeds, 16,384 env steps each, ~90 s on 2 CPU cores): untrained eval return 339 / 314, after training
780 / 935 (2.6x the untrained mean). The assertion asks for 1.8x, well clear of evaluation noise (8 episodes).
"""

import jax
import numpy as np
import pytest

from purejaxsphere import load_config, make_train
from purejaxsphere.programs import make_rollout_fn


def test_ppo_sphere_improves_return_on_inverted_double_pendulum():
    cfg = load_config(
        "tasks=[brax/inverted_double_pendulum]", "seeds=2", "num_envs=16", "ppo.n_steps=32",
        "ppo.minibatch_size=128", "ppo.update_epochs=4", "network.hidden_sizes=[32,32]",
        "network.gate_hidden_sizes=[32]", "network.critic_hidden_sizes=[32,32]", "network.n_experts=4",
        "episode_length=200", "eval.episodes=8", "total_timesteps=16384", "eval.interval=8192",
    )
    trainer = make_train(cfg)
    untrained = trainer.evaluate_untrained(0)["eval_return"]
    result = trainer()
    trained = result.eval_return[0, 0]  # end-of-task evaluation, per seed
    assert np.isfinite(trained).all()
    assert trained.mean() > 1.8 * untrained.mean(), (untrained, trained)


def sampled_return(rollout, state, rollouts: int = 6) -> np.ndarray:
    """Mean return of the episodes that end during `rollouts` calls of the trainer's own rollout (the stochastic
    policy PPO optimises, actions sampled), per seed."""
    count = total = 0.0
    for _ in range(rollouts):
        state, (_, episodes) = rollout(state)
        episodes = np.asarray(episodes)  # [seed, step, (finished, their returns, successes, non-finite)]
        count, total = count + episodes[..., 0].sum(-1), total + episodes[..., 1].sum(-1)
    assert (count >= 30).all(), count
    return total / count


@pytest.mark.slow
def test_ppo_improves_h1_stand_return_on_cpu_physics():
    """Issue 4: a short CPU run on humanoidbench/h1_stand improves the return of the policy it trains.

    Official hyperparameters (KL-adaptive learning rate from 3e-4, target KL 0.03, gamma 0.99, 5 epochs) on a smaller
    batch and network: 2 seeds x 64 envs x 16 steps, minibatch 256, MoE of 4 experts with [64, 64] hidden layers,
    200-step episodes, 65,536 env steps per seed (~11 min on 2 shared, loaded cores; see docs/humanoidbench.md).
    Measured: return of the sampled-action policy 15.6 / 15.9 untrained -> 27.4 / 23.9 trained (1.76x / 1.50x;
    seeds 2, 3: see the doc). The deterministic (mean-action) evaluation does not improve reliably at this budget
    (33.2 / 32.4 -> 34.6 / 26.5): the policy's std is still ~0.95 of its initial 1 (entropy 26.96 -> 26.3-26.8), so
    PPO is improving a policy that is mostly noise and its mean alone stands about as long as before.
    """
    cfg = load_config(
        "tasks=[humanoidbench/h1_stand]", "physics=cpu", "seeds=2", "num_envs=64", "ppo.n_steps=16",
        "ppo.minibatch_size=256", "ppo.update_epochs=5", "network.hidden_sizes=[64,64]",
        "network.gate_hidden_sizes=[64]", "network.critic_hidden_sizes=[64,64]", "network.n_experts=4",
        "episode_length=200", "eval.episodes=16", "total_timesteps=65536", "eval.interval=65536",
    )
    trainer = make_train(cfg)
    rollout = jax.jit(jax.vmap(make_rollout_fn(trainer.programs(0).env, trainer.nets, cfg)))
    untrained = sampled_return(rollout, trainer.start_task(0, None))
    result = trainer()
    trained = sampled_return(rollout, result.state)
    assert np.isfinite(result.eval_return[0, 0]).all()
    assert (trained > 1.25 * untrained).all(), (untrained, trained)
