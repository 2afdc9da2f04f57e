"""The PPO update phase's minibatch step in variants, timed in turns: where the update time goes.

    python scripts/profile_update.py [--minibatches 40] [--min-seconds 10] [hydra overrides]
        (default shapes: the official HumanoidBench config: minibatch 64, obs 51, act 19, MoE 10 x 3x256)

One program = a lax.scan of `--minibatches` steps of `ppo.minibatch_update` (the trainer's own step: actor and
critic gradients, two clipped Adams, KL-adaptive rate, diagnostics) on random minibatches, for:
- sphere_<mode>:        the trainer's step with sphere.mode = loss (default algo), off, grad
- plain_ppo:            a reference step: one value_and_grad of clipped surrogate + 0.5 value loss over both
                        networks, one clipped Adam (what Brax's PPO step does), same networks
- *_vmap<S>:            the same under jax.vmap over S seeds (the trainer vmaps its chunk program over seeds)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from purejaxsphere.config import load_config


def random_batches(key: Any, n: int, size: int, obs: int, act: int) -> Any:
    import jax

    from purejaxsphere import ppo as ppo_lib

    ks = jax.random.split(key, 5)
    shape = (n, size)
    return ppo_lib.Batch(
        obs=jax.random.normal(ks[0], shape + (obs,)),
        action=jax.random.uniform(ks[1], shape + (act,), minval=-1.0, maxval=1.0),
        log_prob=-act * 1.4 + 0.1 * jax.random.normal(ks[2], shape),
        advantage=jax.random.normal(ks[3], shape),
        target=jax.random.normal(ks[4], shape),
    )


def trainer_step_program(cfg: Any, nets: Any, batches: Any) -> Callable:
    """(UpdateState) -> UpdateState: the trainer's minibatch step scanned over `batches`."""
    import jax

    from purejaxsphere import ppo as ppo_lib

    step = lambda carry, mb: ppo_lib.minibatch_update(  # noqa: E731
        carry, mb, actor_apply=nets.actor.apply, critic_apply=nets.critic.apply, optimizer=nets.optimizer,
        ppo=cfg.ppo, sphere_cfg=cfg.sphere)
    return lambda state: jax.lax.scan(step, state, batches)


def plain_ppo_program(cfg: Any, nets: Any, batches: Any) -> Callable:
    """(UpdateState) -> UpdateState: Brax-style step: one loss over both networks, one optimizer."""
    import jax

    from purejaxsphere import ppo as ppo_lib
    from purejaxsphere.networks import gaussian_log_prob

    ppo = cfg.ppo

    def loss(params, mb):
        out = nets.actor.apply(params[0], mb.obs)
        log_prob = gaussian_log_prob(out.mean, out.log_std, mb.action)
        adv = (mb.advantage - mb.advantage.mean()) / (mb.advantage.std() + 1e-8)
        pg, _, kl = ppo_lib.clipped_surrogate(log_prob, mb.log_prob, adv, ppo.clip_eps)
        return pg + ppo.vf_coef * ppo_lib.value_loss(nets.critic.apply(params[1], mb.obs), mb.target), kl

    def step(state, mb):
        learner = state.learner
        params = (learner.actor_params, learner.critic_params)
        (value, kl), grads = jax.value_and_grad(loss, has_aux=True)(params, mb)
        params, opt_state = ppo_lib.apply_update(nets.optimizer, params, learner.actor_opt_state, grads,
                                                 learner.learning_rate)
        lr = ppo_lib.adapt_learning_rate(learner.learning_rate, kl, ppo.target_kl)
        learner = learner._replace(actor_params=params[0], critic_params=params[1], actor_opt_state=opt_state,
                                   learning_rate=lr)
        return state._replace(learner=learner), value

    return lambda state: jax.lax.scan(step, state, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minibatches", type=int, default=40)
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--obs", type=int, default=51)
    parser.add_argument("--act", type=int, default=19)
    parser.add_argument("--seeds", type=int, default=1, help="also time some variants vmapped over this many seeds "
                        "(0: not)")
    parser.add_argument("--out")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    base = load_config("benchmark=humanoidbench_h1", "physics=cpu", *args.overrides)

    import jax
    import jax.numpy as jnp

    from purejaxsphere import bench
    from purejaxsphere import ppo as ppo_lib
    from purejaxsphere.programs import build_networks

    batches = random_batches(jax.random.PRNGKey(0), args.minibatches, base.ppo.minibatch_size, args.obs, args.act)
    samples = args.minibatches * base.ppo.minibatch_size
    programs: dict[str, bench.Program] = {}
    variants = [("sphere_loss", "loss"), ("sphere_off", "off"), ("sphere_grad", "grad"), ("plain_ppo", "off")]
    for name, mode in variants:
        cfg = dataclasses.replace(base, sphere=dataclasses.replace(base.sphere, mode=mode))
        nets = build_networks(cfg, args.act)
        dummy = jnp.zeros((1, args.obs))
        actor_params = nets.actor.init(jax.random.PRNGKey(1), dummy)
        critic_params = nets.critic.init(jax.random.PRNGKey(2), dummy)
        if name == "plain_ppo":
            opt_state = nets.optimizer.init((actor_params, critic_params))
            fn = plain_ppo_program(cfg, nets, batches)
        else:
            opt_state = nets.optimizer.init(actor_params)
            fn = trainer_step_program(cfg, nets, batches)
        learner = ppo_lib.Learner(actor_params, critic_params, opt_state, nets.optimizer.init(critic_params),
                                  jnp.asarray(3e-4))
        state = ppo_lib.UpdateState(learner, jnp.zeros((), bool))
        programs[name] = bench.jax_program(fn, state, samples, with_outputs=True)
        if name in ("sphere_loss", "plain_ppo") and args.seeds:
            # The trainer vmaps its chunk over seeds: the same step under vmap, `--seeds` identical copies.
            stack_seeds = lambda tree: jax.tree.map(lambda x: jnp.stack([x] * args.seeds), tree)  # noqa: E731
            vmapped = jax.vmap(fn)
            programs[f"{name}_vmap{args.seeds}"] = bench.jax_program(vmapped, stack_seeds(state), samples * args.seeds,
                                                                     with_outputs=True)
    load = bench.load_average()
    timings = bench.time_interleaved(programs, args.min_seconds)
    print(f"{args.minibatches} minibatch steps of {base.ppo.minibatch_size} samples, MoE E={base.network.n_experts} "
          f"{base.network.hidden_sizes}; load {load} -> {bench.load_average()}")
    print("ms per minibatch step (vmapped variants: per step of all seeds together)")
    print(f"{'variant':<32}{'best ms/step':>14}{'median ms/step':>16}{'compile s':>11}")
    for name, t in timings.items():
        print(f"{name:<32}{t.best_seconds / args.minibatches * 1e3:>14.2f}"
              f"{t.median_seconds / args.minibatches * 1e3:>16.2f}{t.compile_seconds:>11.1f}")
    if args.out:
        with open(args.out, "w") as f:
            timed = {k: t.as_dict() for k, t in timings.items()}
            json.dump({"load": load, "minibatches": args.minibatches, "timings": timed}, f, indent=2)


if __name__ == "__main__":
    main()
