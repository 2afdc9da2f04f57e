"""The trainer's chunk and rollout programs with the MoE experts computed batch-major (networks.py today) and
expert-major (a candidate), timed in turns on one task and batch shape.

    python scripts/profile_expert_layout.py [--task T] [--num-envs N] [--min-seconds 10] [hydra overrides]

`networks.ExpertStack` applies the stacked experts as einsum("bei,eio->beo") on a [batch, expert, in] activation
(the input broadcast to every expert first). The candidate keeps activations as [expert, batch, in]
(einsum("bi,eio->ebo") for the first layer, "ebi,eio->ebo" after it: one batched matmul per expert, no broadcast)
and transposes only its outputs back to [batch, expert, ...]. Same parameters (names, shapes), same outputs; the
script checks that, then compiles both trainers' programs (tracing with one layout, then the other) and times them.
Nothing in the package is changed: the candidate is swapped into `purejaxsphere.networks` for the second build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from purejaxsphere.cli import configure_xla  # noqa: E402  (no jax import yet)
from purejaxsphere.config import load_config  # noqa: E402


def expert_major_stack() -> Any:
    """An ExpertStack with the same parameters computed expert-major."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from purejaxsphere.networks import scaled_init

    class ExpertMajorStack(nn.Module):
        n_experts: int
        hidden_sizes: Sequence[int]
        out_size: int
        head_scale: float = 0.01

        @nn.compact
        def __call__(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
            h, hidden, spec = x, [], "bi,eio->ebo"
            for i, width in enumerate(self.hidden_sizes):
                w = self.param(f"w{i}", scaled_init(np.sqrt(2.0), batch_axis=(0,)), (self.n_experts, h.shape[-1], width))
                b = self.param(f"b{i}", nn.initializers.zeros, (self.n_experts, width))
                h = nn.relu(jnp.einsum(spec, h, w) + b[:, None, :])
                hidden.append(jnp.swapaxes(h, 0, 1))
                spec = "ebi,eio->ebo"
            w = self.param("w_out", scaled_init(self.head_scale, batch_axis=(0,)), (self.n_experts, h.shape[-1], self.out_size))
            b = self.param("b_out", nn.initializers.zeros, (self.n_experts, self.out_size))
            return jnp.swapaxes(jnp.einsum(spec, h, w) + b[:, None, :], 0, 1), tuple(hidden)

    return ExpertMajorStack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task")
    parser.add_argument("--num-envs", type=int)
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--out")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = list(args.overrides) + ["seeds=1"]
    overrides += [f"tasks=[{args.task}]"] if args.task else []
    overrides += [f"num_envs={args.num_envs}"] if args.num_envs else []
    cfg = load_config(*overrides)
    cfg.tasks = cfg.tasks[:1]
    configure_xla(cfg)

    import jax
    import numpy as np

    from purejaxsphere import bench, networks
    from purejaxsphere.train import Trainer

    cfg = bench.bench_setup(cfg, 1)
    programs: dict[str, bench.Program] = {}
    outputs = {}
    original = networks.ExpertStack
    for name, stack in (("batch_major", original), ("expert_major", expert_major_stack())):
        networks.ExpertStack = stack
        trainer = Trainer(cfg)
        built = bench.trainer_programs(trainer)
        state = built["trainer"].carry
        obs = state.env_state.obs[0]
        params = jax.tree.map(lambda x: x[0], state.actor_params)
        outputs[name] = jax.jit(trainer.nets.actor.apply)(params, obs)
        programs[f"rollout_{name}"] = built["collection"]
        programs[f"chunk_{name}"] = built["trainer"]
    networks.ExpertStack = original
    a, b = outputs["batch_major"], outputs["expert_major"]
    max_diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in ((a.mean, b.mean), (a.features, b.features), (a.weights, b.weights)))
    load = bench.load_average()
    timings = bench.time_interleaved(programs, args.min_seconds)
    result = {"setup": bench.setup_summary(cfg, 1), "max_abs_output_difference": max_diff, "load_timing": load,
              "load_end": bench.load_average(), "timings": {k: t.as_dict() for k, t in timings.items()}}
    print(f"{cfg.tasks[0]} num_envs={cfg.num_envs}; same outputs to {max_diff:.2e}; load {load} -> {result['load_end']}")
    print(f"{'program':<24}{'best s':>10}{'median s':>10}{'compile s':>11}{'steps/s':>10}")
    for name, t in timings.items():
        print(f"{name:<24}{t.best_seconds:>10.3f}{t.median_seconds:>10.3f}{t.compile_seconds:>11.1f}{t.rate:>10,.0f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
