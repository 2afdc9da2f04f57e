"""What distinguishes one HumanoidBench H1 task from another: model file, reward, termination, success bar."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp

Quantities = dict  # name -> array; see h1.QUANTITIES


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A HumanoidBench H1 task.

    reward(q) -> (reward, terms): `terms` holds every reward term under HumanoidBench's own info name.
    terminated(q) -> bool array.
    mjx_terrain_geoms: collision geoms of the terrain (names after `h1.name_collision_geoms`) the feet may touch in
    the MJX model besides the floor.
    pole_contact: the task needs the `pole_contact` quantity (robot touching a pole).
    """

    name: str
    xml: str
    success_bar: float
    reward: Callable[[Quantities], tuple[jnp.ndarray, dict]]
    terminated: Callable[[Quantities], jnp.ndarray]
    mjx_terrain_geoms: tuple[str, ...] = ()
    pole_contact: bool = False
