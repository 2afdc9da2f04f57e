"""What each `network.init` scheme gives the Top-K MoE actor at initialization (docs/experiments.md).

    python scripts/init_statistics.py [--seeds 5] [--rows 64] [--obs 51] [--act 19] [--out F.json]
        (default: the official HumanoidBench actor, 10 experts top-2, 3x256 experts and gate, obs 51, act 19)

For each scheme and seed (the seed sets the parameters and the observations, x ~ N(0, 1) of shape [rows, obs]):
- feature_sq:     mean over rows, experts and units of h_e(x)^2, the last hidden layer of every expert
- gate_logit_std: std of the gate logits over rows and experts
- action_std:     std of the action mean over rows and action dimensions
- sphere_penalty: the SPHERE loss of the routing-weighted features phi (`sphere.sphere_penalty`)
- routing_entropy: mean entropy (nats) of the top-2 routing weights (log 2 = 0.693 is an even split)
Prints a markdown table of the min-max range over seeds and writes every value to --out when given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUANTITIES = ("feature_sq", "gate_logit_std", "action_std", "sphere_penalty", "routing_entropy")


def statistics(init: str, seed: int, rows: int, obs_size: int, act_size: int) -> dict[str, float]:
    """The QUANTITIES of the default actor under `init`, parameters and observations drawn from `seed`."""
    import jax

    from purejaxsphere import load_config, sphere
    from purejaxsphere.networks import routing_entropy
    from purejaxsphere.programs import build_networks

    cfg = load_config("benchmark=humanoidbench_h1", f"network.init={init}")
    actor = build_networks(cfg, act_size).actor
    param_key, obs_key = jax.random.split(jax.random.PRNGKey(seed))
    obs = jax.random.normal(obs_key, (rows, obs_size))
    out = actor.apply(actor.init(param_key, obs), obs)
    phi = sphere.weighted_expert_features(out.features, out.weights)
    return {
        "feature_sq": float((out.features**2).mean()),
        "gate_logit_std": float(out.logits.std()),
        "action_std": float(out.mean.std()),
        "sphere_penalty": float(sphere.sphere_penalty(phi)),
        "routing_entropy": float(routing_entropy(out.weights)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--obs", type=int, default=51)
    parser.add_argument("--act", type=int, default=19)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {
        init: [statistics(init, seed, args.rows, args.obs, args.act) for seed in range(args.seeds)]
        for init in ("lecun", "he")
    }
    print(f"| quantity ({args.seeds} seeds, min-max) | lecun (official, default) | he (before) |")
    print("|---|---|---|")
    for name in QUANTITIES:
        cells = []
        for init in ("lecun", "he"):
            values = [row[name] for row in results[init]]
            cells.append(f"{min(values):.3g} - {max(values):.3g}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
