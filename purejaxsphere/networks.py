"""Actor and critic networks (flax linen).

Every actor maps a batch of observations [B, obs] to (action mean [B, A], log-std [A], aux) where aux holds the
per-expert hidden features of every layer (`hidden`, a tuple of [B, E, d_l]; `features` = the last one) and the
routing weights [B, E] (`weights`; rows sum to 1), plus the gate logits. A dense actor is one expert with weight 1,
so SPHERE, its ablations and the diagnostics share one code path.

Experts are stacked on a leading axis and applied with one batched matmul per layer; every expert is computed and
the routing weights zero the unselected ones (measured on CPU: faster than gathering the K selected experts).

Initialization (`network.init`, `layer_gains`): "lecun" (default) is the official code's, flax's default `nn.Dense`
on every layer (kernel lecun_normal, std 1/sqrt(fan_in), zero bias; heads included); "he" is this project's earlier
scheme (He on hidden layers, 0.01 on expert heads and gate logits). log_std starts at 0 under both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxsphere.config import ACTOR_KINDS, NETWORK_INITS


class ActorOutput(NamedTuple):
    mean: jax.Array  # [B, A]
    log_std: jax.Array  # [A]
    hidden: tuple[jax.Array, ...]  # per layer [B, E, d_l], post-activation
    weights: jax.Array  # [B, E] routing weights, rows sum to 1
    logits: jax.Array  # [B, E_routed] gate logits (zeros [B, 1] for a dense actor)

    @property
    def features(self) -> jax.Array:
        """Last hidden layer of every expert, [B, E, d]."""
        return self.hidden[-1]


def scaled_init(gain: float, batch_axis: tuple[int, ...] = ()) -> Callable:
    """Truncated-normal init with std = gain / sqrt(fan_in): flax's default `lecun_normal` for gain 1, He for sqrt(2).

    `batch_axis` marks the stacked expert axis so fan_in is one expert's input size. No scheme here needs a QR
    decomposition: orthogonal init batched over experts and vmapped over seeds deadlocked XLA:CPU (jax 0.10.2).
    """
    return nn.initializers.variance_scaling(gain**2, "fan_in", "truncated_normal", batch_axis=batch_axis)


def layer_gains(scheme: str, n_hidden: int, head_scale: float) -> list[float]:
    """Kernel gains of `n_hidden` ReLU layers and then the linear head, for the `network.init` scheme.

    - lecun: every layer 1 (a plain flax `nn.Dense`, zero bias): the official SPHERE code's init for every network.
    - he:    sqrt(2) on the hidden layers and `head_scale` on the head (0.01 for expert heads and gate logits).
    """
    if scheme == "lecun":
        return [1.0] * (n_hidden + 1)
    if scheme == "he":
        return [float(np.sqrt(2.0))] * n_hidden + [head_scale]
    raise ValueError(f"unknown network init {scheme!r}; choose one of {NETWORK_INITS}")


class ExpertStack(nn.Module):
    """E independent MLPs (ReLU hidden layers + linear head) evaluated together on a stacked expert axis."""

    n_experts: int
    hidden_sizes: Sequence[int]
    out_size: int
    init_scheme: str = "lecun"  # network.init (`layer_gains`); not `init`, which would shadow Module.init
    head_scale: float = 0.01  # the head's gain under init="he"

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """x [B, in] -> (outputs [B, E, out], hidden features per layer [B, E, d_l]).

        Computed expert-major ([E, B, d]: the expert axis leads every batched matmul) and transposed only where
        returned: with the weights as program inputs, batch-major einsums ("bei,eio->beo") ran slower on XLA:CPU,
        forward, gradient and whole PPO minibatch step alike (scripts/profile_moe_layout.py,
        scripts/profile_update.py; figures in docs/benchmarks.md).
        """
        sizes = [x.shape[-1], *self.hidden_sizes, self.out_size]
        names = [str(i) for i in range(len(self.hidden_sizes))] + ["_out"]  # params w0, b0, ..., w_out, b_out
        gains = layer_gains(self.init_scheme, len(self.hidden_sizes), self.head_scale)
        h, hidden = None, []
        for name, gain, fan_in, width in zip(names, gains, sizes[:-1], sizes[1:]):
            w = self.param(f"w{name}", scaled_init(gain, batch_axis=(0,)), (self.n_experts, fan_in, width))
            b = self.param(f"b{name}", nn.initializers.zeros, (self.n_experts, width))
            # The first layer is one [B, in] x [in, E*d] matmul: every expert reads the same input.
            h = (jnp.swapaxes(jnp.einsum("bi,eio->beo", x, w), 0, 1) if h is None else jnp.matmul(h, w)) + b[:, None]
            if name != "_out":
                h = nn.relu(h)
                hidden.append(jnp.swapaxes(h, 0, 1))
        return jnp.swapaxes(h, 0, 1), tuple(hidden)


class MLP(nn.Module):
    hidden_sizes: Sequence[int]
    out_size: int
    init_scheme: str = "lecun"  # network.init (`layer_gains`); not `init`, which would shadow Module.init
    head_scale: float = 1.0  # the head's gain under init="he"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        *gains, head_gain = layer_gains(self.init_scheme, len(self.hidden_sizes), self.head_scale)
        for width, gain in zip(self.hidden_sizes, gains):
            x = nn.relu(nn.Dense(width, kernel_init=scaled_init(gain))(x))
            self.sow("intermediates", "hidden", x)  # read by `actor_hidden_activations`; inert otherwise
        return nn.Dense(self.out_size, kernel_init=scaled_init(head_gain))(x)


def top_k_weights(logits: jax.Array, k: int, temperature: float) -> jax.Array:
    """Softmax over the top-k logits (divided by the temperature); all other experts get weight exactly 0.

    Gradients reach only the selected logits: the unselected weights are constants.
    """
    values, index = jax.lax.top_k(logits, k)
    probs = jax.nn.softmax(values / temperature, axis=-1)
    return jnp.sum(jax.nn.one_hot(index, logits.shape[-1], dtype=probs.dtype) * probs[..., None], axis=-2)


class Actor(nn.Module):
    """Gaussian policy with a state-independent log-std; `kind` picks dense, Top-K MoE, Dense-MoE or DS-MoE."""

    action_size: int
    kind: str = "moe_topk"
    hidden_sizes: Sequence[int] = (256, 256, 256)
    n_experts: int = 10
    top_k: int = 2
    temperature: float = 1.0
    n_shared: int = 1
    gate_hidden_sizes: Sequence[int] = (256, 256, 256)
    init_scheme: str = "lecun"  # network.init (`layer_gains`); not `init`, which would shadow Module.init

    @nn.compact
    def __call__(self, obs: jax.Array) -> ActorOutput:
        batch = obs.shape[0]
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))
        if self.kind == "dense":
            means, hidden = ExpertStack(1, self.hidden_sizes, self.action_size, self.init_scheme, name="experts")(obs)
            weights = jnp.ones((batch, 1), obs.dtype)
            logits = jnp.zeros((batch, 1), obs.dtype)
        elif self.kind in ("moe_topk", "dense_moe", "ds_moe"):
            n_total = self.n_experts + (self.n_shared if self.kind == "ds_moe" else 0)
            experts = ExpertStack(n_total, self.hidden_sizes, self.action_size, self.init_scheme, name="experts")
            means, hidden = experts(obs)
            logits = MLP(self.gate_hidden_sizes, self.n_experts, self.init_scheme, head_scale=0.01, name="gate")(obs)
            if self.kind == "dense_moe":
                weights = jax.nn.softmax(logits / self.temperature, axis=-1)
            else:
                weights = top_k_weights(logits, self.top_k, self.temperature)
            if self.kind == "ds_moe":
                # Shared experts are always on; shared and routed parts each count as one unit of weight, so the
                # mixture is (sum_shared mu_s + sum_routed g_e mu_e) / (n_shared + 1) and the weights sum to 1.
                shared = jnp.ones((batch, self.n_shared), weights.dtype)
                weights = jnp.concatenate([shared, weights], axis=-1) / (self.n_shared + 1)
        else:
            raise ValueError(f"unknown actor kind {self.kind!r}; choose one of {ACTOR_KINDS}")
        mean = jnp.einsum("be,bea->ba", weights, means)
        return ActorOutput(mean=mean, log_std=log_std, hidden=hidden, weights=weights, logits=logits)


class Critic(nn.Module):
    hidden_sizes: Sequence[int] = (256, 256, 256)
    init_scheme: str = "lecun"  # network.init (`layer_gains`); not `init`, which would shadow Module.init

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, 1, self.init_scheme, head_scale=1.0)(obs)[..., 0]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the action dimensions."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian with the given log-std (state-independent)."""
    return jnp.sum(log_std + 0.5 * jnp.log(2.0 * jnp.pi * jnp.e))


def routing_entropy(weights: jax.Array) -> jax.Array:
    """Mean over rows of the entropy (nats) of the routing distribution."""
    return jnp.mean(-jnp.sum(jnp.where(weights > 0, weights * jnp.log(jnp.where(weights > 0, weights, 1.0)), 0.0), -1))


ParamPath = tuple[str, ...]  # keys below params["params"]


class HiddenLayer(NamedTuple):
    """Where one hidden ReLU layer of the actor keeps its weights (paths below params["params"]).

    Expert kernels are [E, in, d] (biases [E, d]), gate kernels [in, d] (biases [d]); `next_kernel` is the layer
    that reads this one ([E, d, out] or [d, out]).
    """

    kernel: ParamPath
    bias: ParamPath
    next_kernel: ParamPath


def actor_hidden_layers(params: dict) -> list[HiddenLayer]:
    """The actor's hidden layers: every expert-stack layer, then the gate trunk (absent for a dense actor).

    Output heads (the experts' `w_out`, the gate's logit layer) are not hidden layers.
    """
    tree = params["params"]
    n_expert = sum(1 for name in tree["experts"] if name.startswith("w") and name[1:].isdigit())
    expert_kernels = [f"w{i}" for i in range(n_expert)] + ["w_out"]
    layers = [
        HiddenLayer(("experts", expert_kernels[i]), ("experts", f"b{i}"), ("experts", expert_kernels[i + 1]))
        for i in range(n_expert)
    ]
    if "gate" in tree:
        n_gate = len(tree["gate"]) - 1  # Dense_0 .. Dense_{n-1} hidden, Dense_n the logits
        dense = [("gate", f"Dense_{i}") for i in range(n_gate + 1)]
        layers += [
            HiddenLayer(dense[i] + ("kernel",), dense[i] + ("bias",), dense[i + 1] + ("kernel",)) for i in range(n_gate)
        ]
    return layers


def actor_hidden_activations(actor: Actor, params: dict, obs: jax.Array) -> list[jax.Array]:
    """Post-ReLU activations of `actor_hidden_layers(params)`, in the same order: [B, E, d] per expert-stack layer,
    then [B, d] per gate layer."""
    out, state = actor.apply(params, obs, mutable=["intermediates"])
    gate = jax.tree.leaves(state.get("intermediates", {}))
    return list(out.hidden) + list(gate)


def param_at(params: dict, path: ParamPath) -> jax.Array:
    """The array at `path` below params["params"]."""
    node = params["params"]
    for key in path:
        node = node[key]
    return node


def expert_head_kernel(params: dict) -> jax.Array:
    """The experts' output layer, [E, d_last, A]: maps the last hidden expert features to each expert's mean."""
    return params["params"]["experts"]["w_out"]
