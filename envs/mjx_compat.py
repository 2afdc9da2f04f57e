"""Rewrite a MuJoCo model into one MJX can build and step fast, and record every change.

MJX (mujoco-mjx 3.3) has no broadphase (every candidate geom pair is tested every step), cannot collide some type
pairs (cylinder with mesh or box, for instance) and gets slow with large convex hulls. `rewrite` applies explicit,
reviewable changes to an `MjSpec` and returns the compiled model together with a list of `Change` records (`Change`
is the record type of every MJX rewrite here: HumanoidBench's `task.compat_record` is this list, MetaWorld's
`task.compat_record` is its own rewrite's `CompatRecord.changes()`):

- `contacts`: if given, the only geom pairs that may collide, as groups `(names_a, names_b)`: every geom of
  `names_a` may touch every geom of `names_b`. Implemented with contype/conaffinity bits (group i gets bit i in the
  contype of its `a` geoms and in the conaffinity of its `b` geoms), not with explicit `<pair>`s: mujoco-mjx 3.3's
  explicit-pair path calls `jnp.clip(a_min=...)`, which jax 0.10 removed. Every other geom keeps a contype bit no
  geom has in its conaffinity (MuJoCo builds a mesh's convex hull, which MJX needs, only for meshes of geoms with
  a nonzero contype or conaffinity) and gets conaffinity 0. Friction and solver parameters keep MuJoCo's mixing.
- `visual_mesh_hulls`: mesh geoms that cannot collide (contype = conaffinity = 0: visual geoms) get contype bit 30,
  which no geom has in its conaffinity: they still never collide, but MuJoCo then builds their convex hull, which
  MJX's `put_model` needs for every mesh geom. (Deleting them instead would change masses of bodies without an
  explicit inertial, e.g. HumanoidBench's terrain bodies.)
- cylinders in a kept contact whose partner type MJX cannot collide become capsules of the same radius and the same
  overall length (half-length reduced by the radius).
- `maxhullvert`: the vertex limit of every mesh's convex hull (MuJoCo's default -1 = no limit).
- `iterations` / `ls_iterations`: solver iteration limits (the speed knob; None keeps the model's).

`check_mjx(model)` builds the MJX model and raises MJX's own error if something is still unsupported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import mujoco

_GT = mujoco.mjtGeom


@dataclasses.dataclass(frozen=True)
class Change:
    """One recorded modification: what kind, on which element, from what to what."""

    kind: str
    target: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:20s} {self.target:32s} {self.detail}"


def _mjx_can_collide(t1: int, t2: int) -> bool:
    from mujoco.mjx._src import collision_driver  # private, but the only source of truth for the pair table

    t1, t2 = sorted((int(t1), int(t2)))
    return (collision_driver.GeomType(t1), collision_driver.GeomType(t2)) in collision_driver._COLLISION_FUNC


def _geom_label(geom: mujoco.MjsGeom, index: int) -> str:
    body = geom.parent.name or "world"
    return geom.name or f"{body}/geom{index}"


def rewrite(
    spec: mujoco.MjSpec,
    *,
    contacts: Sequence[tuple[Sequence[str], Sequence[str]]] | None = None,
    maxhullvert: int | None = None,
    iterations: int | None = None,
    ls_iterations: int | None = None,
    visual_mesh_hulls: bool = False,
) -> tuple[mujoco.MjModel, list[Change]]:
    """Apply the rewrite to `spec` (modified in place) and compile it. Contact groups name geoms.

    Returns the compiled model and the list of changes, in the order they were made.
    """
    changes: list[Change] = []
    geoms = list(spec.geoms)

    if iterations is not None and iterations != spec.option.iterations:
        changes.append(Change("option", "iterations", f"{spec.option.iterations} -> {iterations}"))
        spec.option.iterations = int(iterations)
    if ls_iterations is not None and ls_iterations != spec.option.ls_iterations:
        changes.append(Change("option", "ls_iterations", f"{spec.option.ls_iterations} -> {ls_iterations}"))
        spec.option.ls_iterations = int(ls_iterations)

    if maxhullvert is not None:
        for mesh in spec.meshes:
            if mesh.maxhullvert != maxhullvert:
                changes.append(Change("maxhullvert", f"mesh {mesh.name}", f"{mesh.maxhullvert} -> {maxhullvert}"))
                mesh.maxhullvert = int(maxhullvert)

    if visual_mesh_hulls:
        for i, g in enumerate(geoms):
            if g.type == _GT.mjGEOM_MESH and not (g.contype or g.conaffinity):
                changes.append(Change("visual_mesh_hull", _geom_label(g, i), "contype/conaffinity 0/0 -> 1<<30/0"))
                g.contype = 1 << 30

    if contacts is not None:
        changes += _restrict_contacts(geoms, contacts)

    model = spec.compile()
    return model, changes


def _restrict_contacts(geoms: list, contacts: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[Change]:
    """Let only the named contact groups collide (contype/conaffinity bits, see the module docstring); in place."""
    changes: list[Change] = []
    by_name = {g.name: g for g in geoms if g.name}
    if len(contacts) > 30:
        raise ValueError("at most 30 contact groups (one contype/conaffinity bit each)")
    contype = {id(g): 0 for g in geoms}
    conaffinity = {id(g): 0 for g in geoms}
    members: list[tuple[list, list]] = []
    for bit, (names_a, names_b) in enumerate(contacts):
        group = []
        for names in (names_a, names_b):
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(f"contact group {bit}: not geom names of the model: {missing}")
            group.append([by_name[n] for n in names])
        for g in group[0]:
            contype[id(g)] |= 1 << bit
        for g in group[1]:
            conaffinity[id(g)] |= 1 << bit
        members.append((group[0], group[1]))
    for i, g in enumerate(geoms):
        new_type = contype[id(g)] or (1 << 30 if (g.contype or g.conaffinity) else 0)
        new_aff = conaffinity[id(g)]
        if (g.contype, g.conaffinity) != (new_type, new_aff):
            changes.append(
                Change("contact_bits", _geom_label(g, i), f"contype/conaffinity {g.contype}/{g.conaffinity} -> "
                       f"{new_type}/{new_aff}")
            )
            g.contype, g.conaffinity = new_type, new_aff
    for group_a, group_b in members:
        for g1 in group_a:
            for g2 in group_b:
                for g, other in ((g1, g2), (g2, g1)):
                    if g.type == _GT.mjGEOM_CYLINDER and not _mjx_can_collide(g.type, other.type):
                        radius, half = float(g.size[0]), float(g.size[1])
                        g.type = _GT.mjGEOM_CAPSULE
                        g.size = [radius, max(half - radius, 0.0), 0.0]
                        changes.append(Change("cylinder_to_capsule", g.name,
                                              f"r {radius} half-length {half} -> {max(half - radius, 0.0)}"))
        changes.append(
            Change("contacts", f"{len(group_a)} x {len(group_b)} geoms",
                   f"{[g.name for g in group_a]} x {[g.name for g in group_b]}")
        )
    return changes


def name_geoms(spec: mujoco.MjSpec, geoms: Sequence[mujoco.MjsGeom], prefix: str) -> list[Change]:
    """Give unnamed geoms a name (`prefix`, `prefix_1`, ...) so contact groups can name them; returns the changes."""
    changes = []
    taken = {g.name for g in spec.geoms if g.name}
    for k, g in enumerate(geoms):
        if g.name:
            continue
        name = prefix if k == 0 and prefix not in taken else f"{prefix}_{k}"
        while name in taken:
            name += "_"
        g.name = name
        taken.add(name)
        changes.append(Change("name", f"{g.parent.name or 'world'} geom", f"unnamed -> {name}"))
    return changes


def check_mjx(model: mujoco.MjModel):
    """Build the MJX model (raises MJX's NotImplementedError for anything unsupported); returns it."""
    from mujoco import mjx

    return mjx.put_model(model)
