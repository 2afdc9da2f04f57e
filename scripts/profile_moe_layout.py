"""The MoE expert stack in two layouts, timed in turns: why `networks.ExpertStack` computes expert-major.

    python scripts/profile_moe_layout.py [--rows 16 64] [--steps 16] [--min-seconds 6] [--out F.json]
        (default shapes: the official HumanoidBench actor: 10 experts, 3x256, obs 51, act 19)

For each row count, a lax.scan of `--steps` calls of:
- batch_major_*:   the previous formulation, activations [B, E, d] and einsum "bei,eio->beo" per layer
- expert_stack_*:  the package's ExpertStack (activations [E, B, d], first layer one [B, in] x [in, E*d] matmul)
as `*_forward` (outputs) and `*_grad` (gradient of a scalar of the outputs w.r.t. all weights), with the weights
as program inputs (as in the trainer), plus `*_forward_const` with the weights closed over as constants, which is
how a quick microbenchmark is often written and where XLA hides the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def batch_major(params: dict, x: Any, n_layers: int) -> Any:
    """The batch-major formulation the package used before 2026-11-30 (same parameters, same values)."""
    import jax
    import jax.numpy as jnp

    h = jnp.broadcast_to(x[:, None, :], (x.shape[0],) + params["w0"].shape[:1] + x.shape[-1:])
    for i in range(n_layers):
        h = jax.nn.relu(jnp.einsum("bei,eio->beo", h, params[f"w{i}"]) + params[f"b{i}"])
    return jnp.einsum("bei,eio->beo", h, params["w_out"]) + params["b_out"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--experts", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    parser.add_argument("--obs", type=int, default=51)
    parser.add_argument("--act", type=int, default=19)
    parser.add_argument("--min-seconds", type=float, default=6.0)
    parser.add_argument("--out")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from purejaxsphere import bench
    from purejaxsphere.networks import ExpertStack

    stack = ExpertStack(args.experts, tuple(args.hidden), args.act)
    n_layers = len(args.hidden)
    layouts: dict[str, Callable] = {
        "batch_major": lambda p, x: batch_major(p["params"], x, n_layers),
        "expert_stack": lambda p, x: stack.apply(p, x)[0],
    }

    def scanned(fn: Callable) -> Callable:
        """(params, x) -> sum over `steps` calls of fn on slightly shifted inputs (nothing hoisted out)."""
        def run(carry: Any) -> Any:
            params, x = carry
            body = lambda total, i: (total + fn(params, x + i * 1e-6), None)  # noqa: E731
            return carry, jax.lax.scan(body, jnp.zeros(()), jnp.arange(args.steps, dtype=jnp.float32))[0]
        return run

    results: dict[str, Any] = {"load": bench.load_average(), "rows": {}}
    for rows in args.rows:
        x = jax.random.normal(jax.random.PRNGKey(0), (rows, args.obs))
        params = stack.init(jax.random.PRNGKey(1), x)
        programs: dict[str, bench.Program] = {}
        outputs = {}
        for name, layout in layouts.items():
            forward = lambda p, xs, f=layout: jnp.sum(jnp.tanh(f(p, xs)))  # noqa: E731
            grad = jax.grad(forward)
            grad_sum = lambda p, xs, g=grad: sum(jnp.sum(leaf) for leaf in jax.tree.leaves(g(p, xs)))  # noqa: E731
            steps = rows * args.steps
            programs[f"{name}_forward"] = bench.jax_program(scanned(forward), (params, x), steps, with_outputs=True)
            programs[f"{name}_grad"] = bench.jax_program(scanned(grad_sum), (params, x), steps, with_outputs=True)
            const = lambda carry, f=forward, p=params: (carry, scanned(lambda _, xs: f(p, xs))((None, carry))[1])  # noqa: E731
            programs[f"{name}_forward_const"] = bench.jax_program(const, x, steps, with_outputs=True)
            outputs[name] = np.asarray(layout(params, x))
        np.testing.assert_allclose(outputs["batch_major"], outputs["expert_stack"], rtol=1e-4, atol=1e-5)
        timings = bench.time_interleaved(programs, args.min_seconds)
        results["rows"][rows] = {name: t.as_dict() for name, t in timings.items()}
        print(f"{rows} rows, {args.steps} calls per program, E={args.experts} {args.hidden}; "
              f"load {bench.load_average()}")
        print(f"{'program':<30}{'best ms':>10}{'median ms':>11}")
        for name, t in timings.items():
            print(f"{name:<30}{t.best_seconds * 1e3:>10.2f}{t.median_seconds * 1e3:>11.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
