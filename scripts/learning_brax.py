"""Learning curves of this trainer against Brax's own PPO on a Brax MJX task, same hyperparameters and budget.

    python scripts/learning_brax.py --task inverted_pendulum --algo ppo \\
        --out docs/learning/brax_inverted_pendulum_ppo.json
    python scripts/learning_brax.py --task inverted_double_pendulum --algo moe_topk --trainers ours --out ...

Both sides evaluate the deterministic (mean-action) policy on `--eval-episodes` episodes at the same env steps
(step 0 and every `--steps / --evals`), for seeds 0..n-1. Brax runs `brax.training.agents.ppo.train` with its own
networks, initialization, losses and evaluator; the hyperparameters below are the only shared settings. The
differences that could not be removed are listed in docs/learning.md. Plot with scripts/learning_plot.py.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

# One batch shape and one optimisation setting for both trainers. One PPO update = NUM_ENVS x N_STEPS env steps.
NUM_ENVS, N_STEPS, MINIBATCH, EPOCHS = 32, 32, 256, 4
HIDDEN = (64, 64)
GAMMA, GAE_LAMBDA, CLIP, ENT_COEF, VF_COEF, MAX_GRAD_NORM = 0.99, 0.95, 0.2, 0.0, 0.5, 0.5
LEARNING_RATE, TARGET_KL = 3e-4, 0.03  # KL-adaptive rate on both sides (/1.5 above 2x, x1.5 below 1/2 the target)
N_EXPERTS = 4


def budget(steps: int, evals: int) -> tuple[int, int]:
    """(total env steps, env steps between evaluations), both whole PPO updates, as Brax's train rounds them."""
    per_update = NUM_ENVS * N_STEPS
    interval = -(-steps // (evals * per_update)) * per_update
    return interval * evals, interval


def our_overrides(task: str, algo: str, seeds: int, total: int, interval: int, episode_length: int,
                  episodes: int) -> list[str]:
    """The Hydra overrides that give our trainer the shared hyperparameters."""
    hidden = ",".join(map(str, HIDDEN))
    return [
        f"algo={algo}", f"tasks=[brax/{task}]", f"seeds={seeds}", f"num_envs={NUM_ENVS}", f"ppo.n_steps={N_STEPS}",
        f"ppo.minibatch_size={MINIBATCH}", f"ppo.update_epochs={EPOCHS}", f"ppo.gamma={GAMMA}",
        f"ppo.gae_lambda={GAE_LAMBDA}", f"ppo.clip_eps={CLIP}", f"ppo.ent_coef={ENT_COEF}", f"ppo.vf_coef={VF_COEF}",
        f"ppo.max_grad_norm={MAX_GRAD_NORM}", "ppo.lr_schedule=adaptive", f"ppo.learning_rate={LEARNING_RATE}",
        f"ppo.target_kl={TARGET_KL}", "ppo.normalize_obs=true", f"network.hidden_sizes=[{hidden}]",
        f"network.gate_hidden_sizes=[{hidden}]", f"network.critic_hidden_sizes=[{hidden}]",
        f"network.n_experts={N_EXPERTS}", f"episode_length={episode_length}", f"total_timesteps={total}",
        f"eval.interval={interval}", f"eval.episodes={episodes}", "diagnostics.enabled=false", "wandb.mode=disabled",
    ]


def run_ours(args: argparse.Namespace, total: int, interval: int) -> dict[str, Any]:
    """Our trainer, all seeds in one compiled program: eval return [eval point, seed] at step 0 and every interval."""
    from purejaxsphere import load_config, make_train

    cfg = load_config(*our_overrides(args.task, args.algo, args.seeds, total, interval, args.episode_length,
                                     args.eval_episodes))
    start_time = time.perf_counter()
    trainer = make_train(cfg)
    untrained = trainer.evaluate_untrained(0)["eval_return"]
    result = trainer()
    wall = time.perf_counter() - start_time
    rows = [row for row in result.metrics if row.get("eval_return") is not None]
    steps = sorted({int(row["env_steps"]) for row in rows})
    curve = np.full((len(steps), args.seeds), np.nan)
    for row in rows:
        curve[steps.index(int(row["env_steps"])), int(row["seed"])] = row["eval_return"]
    return {"steps": [0, *steps], "eval_return": np.vstack([np.asarray(untrained)[None], curve]).tolist(),
            "wall_seconds": wall}


def _clipped(env):
    """The Brax env with actions clipped to [-1, 1] before it steps, as our trainer clips them."""
    import jax.numpy as jnp
    from brax.envs.base import Wrapper

    class ClipAction(Wrapper):
        def step(self, state, action):
            return self.env.step(state, jnp.clip(action, -1.0, 1.0))

    return ClipAction(env)


def run_brax(args: argparse.Namespace, total: int, interval: int) -> dict[str, Any]:
    """Brax's PPO, one call per seed: eval return [eval point, seed] at the same env steps as ours."""
    import jax
    import jax._src.api
    from brax import envs as brax_envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    # brax 0.14.2's PPO still calls jax.device_put_replicated, which jax 0.10 keeps only in jax._src.api.
    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = jax._src.api.device_put_replicated
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=HIDDEN, value_hidden_layer_sizes=HIDDEN,
        activation=jax.nn.relu, distribution_type="normal", noise_std_type="log", init_noise_std=1.0,
        state_dependent_std=False,
    )
    # Time limits: Brax's own treatment (bootstrap_on_timeout=False: truncated steps are masked out of GAE).
    # bootstrap_on_timeout=True needs envs that set info["time_out"], which Brax's own envs do not.
    batch_size = MINIBATCH // N_STEPS  # Brax's minibatch: batch_size trajectories of unroll_length steps
    curves, start_time = [], time.perf_counter()
    for seed in range(args.seeds):
        points: list[tuple[int, float]] = []
        ppo.train(
            environment=_clipped(brax_envs.get_environment(args.task, backend="mjx")), num_timesteps=total,
            num_envs=NUM_ENVS, episode_length=args.episode_length, unroll_length=N_STEPS, batch_size=batch_size,
            num_minibatches=NUM_ENVS * N_STEPS // MINIBATCH, num_updates_per_batch=EPOCHS, discounting=GAMMA,
            gae_lambda=GAE_LAMBDA, clipping_epsilon=CLIP, entropy_cost=ENT_COEF, vf_loss_coefficient=VF_COEF,
            max_grad_norm=MAX_GRAD_NORM, learning_rate=LEARNING_RATE, learning_rate_schedule="ADAPTIVE_KL",
            desired_kl=TARGET_KL, normalize_observations=True, normalize_advantage=True,
            network_factory=network_factory, seed=seed, num_evals=total // interval + 1,
            num_eval_envs=args.eval_episodes, deterministic_eval=True,
            progress_fn=lambda step, metrics, points=points: points.append(
                (int(step), float(metrics["eval/episode_reward"]))),
        )
        curves.append(points)
    steps = [step for step, _ in curves[0]]
    assert all([step for step, _ in points] == steps for points in curves), curves
    returns = np.array([[value for _, value in points] for points in curves]).T
    return {"steps": steps, "eval_return": returns.tolist(), "wall_seconds": time.perf_counter() - start_time}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="inverted_pendulum", help="a Brax MJX env name")
    parser.add_argument("--algo", default="ppo", help="our algorithm config (ppo, moe_topk, moe_topk_sphere, ...)")
    parser.add_argument("--trainers", default="ours,brax", help="comma-separated: ours, brax")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps per seed (rounded up)")
    parser.add_argument("--evals", type=int, default=10, help="evaluations after step 0")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (other trainers in it are kept)")
    args = parser.parse_args(argv)
    total, interval = budget(args.steps, args.evals)
    settings = {
        "task": f"brax/{args.task}", "algo": args.algo, "seeds": args.seeds, "total_env_steps": total,
        "episode_length": args.episode_length, "eval_episodes": args.eval_episodes,
        "batch": {"num_envs": NUM_ENVS, "n_steps": N_STEPS, "minibatch": MINIBATCH, "epochs": EPOCHS},
    }
    # Trainers already in --out (an earlier call with other --trainers) are kept if they ran the same settings.
    record: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if clash := [key for key, value in settings.items() if key in record and record[key] != value]:
        raise SystemExit(f"{args.out} was written with other settings ({', '.join(clash)}); choose another --out")
    from purejaxsphere.bench import machine_info

    record |= settings | {"machine": machine_info()}
    runners = {"ours": run_ours, "brax": run_brax}
    for name in args.trainers.split(","):
        record[name] = runners[name](args, total, interval)
        final = np.asarray(record[name]["eval_return"])[-1]
        print(f"{name}: final eval return {final.mean():.1f} ± {final.std():.1f} over {args.seeds} seeds, "
              f"{record[name]['wall_seconds']:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))  # after each trainer: a later failure keeps it


if __name__ == "__main__":
    main()
