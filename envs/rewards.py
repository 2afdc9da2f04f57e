"""Reward shaping helpers in jnp, with dm_control's `rewards.tolerance` semantics.

`tolerance(x, bounds=(lo, hi), margin, sigmoid, value_at_margin)` is 1 where `lo <= x <= hi`; outside the bounds it
decays with the distance to the nearest bound, scaled by `margin`, along the named sigmoid, so that it equals
`value_at_margin` at distance `margin`. With `margin == 0` it is the plain indicator of the bounds. Written from
dm_control's documented formulas (dm_control/utils/rewards.py); checked against them in the tests.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

SIGMOIDS = ("gaussian", "hyperbolic", "long_tail", "reciprocal", "cosine", "linear", "quadratic", "tanh_squared")


def _sigmoid(x: jnp.ndarray, value_at_1: float, sigmoid: str) -> jnp.ndarray:
    """A function of x >= 0 that is 1 at x = 0 and `value_at_1` at x = 1 (dm_control's `_sigmoids`)."""
    if sigmoid in ("cosine", "linear", "quadratic"):
        if not 0.0 <= value_at_1 < 1.0:
            raise ValueError(f"value_at_margin must be in [0, 1) for {sigmoid}, got {value_at_1}")
    elif not 0.0 < value_at_1 < 1.0:
        raise ValueError(f"value_at_margin must be in (0, 1) for {sigmoid}, got {value_at_1}")

    if sigmoid == "gaussian":
        scale = math.sqrt(-2.0 * math.log(value_at_1))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if sigmoid == "hyperbolic":
        scale = math.acosh(1.0 / value_at_1)
        return 1.0 / jnp.cosh(x * scale)
    if sigmoid == "long_tail":
        scale = math.sqrt(1.0 / value_at_1 - 1.0)
        return 1.0 / ((x * scale) ** 2 + 1.0)
    if sigmoid == "reciprocal":
        scale = 1.0 / value_at_1 - 1.0
        return 1.0 / (jnp.abs(x) * scale + 1.0)
    if sigmoid == "cosine":
        scale = math.acos(2.0 * value_at_1 - 1.0) / math.pi
        scaled = x * scale
        return jnp.where(jnp.abs(scaled) < 1.0, (1.0 + jnp.cos(jnp.pi * scaled)) / 2.0, 0.0)
    if sigmoid == "linear":
        scale = 1.0 - value_at_1
        scaled = x * scale
        return jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled, 0.0)
    if sigmoid == "quadratic":
        scale = math.sqrt(1.0 - value_at_1)
        scaled = x * scale
        return jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled**2, 0.0)
    if sigmoid == "tanh_squared":
        scale = math.atanh(math.sqrt(1.0 - value_at_1))
        return 1.0 - jnp.tanh(x * scale) ** 2
    raise ValueError(f"unknown sigmoid {sigmoid!r}; known: {', '.join(SIGMOIDS)}")


def tolerance(
    x: jnp.ndarray,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = 0.1,
) -> jnp.ndarray:
    """1 inside `bounds`, decaying to `value_at_margin` at distance `margin` outside them (elementwise, float32)."""
    lower, upper = bounds
    if lower > upper:
        raise ValueError(f"lower bound {lower} above upper bound {upper}")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    x = jnp.asarray(x, jnp.float32)
    in_bounds = (lower <= x) & (x <= upper)
    if margin == 0:
        return jnp.where(in_bounds, 1.0, 0.0).astype(jnp.float32)
    distance = jnp.where(x < lower, lower - x, x - upper) / margin
    return jnp.where(in_bounds, 1.0, _sigmoid(distance, value_at_margin, sigmoid)).astype(jnp.float32)
