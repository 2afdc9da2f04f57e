"""MetaWorld Sawyer models: loaded from the package's XML shipped in envs/metaworld/assets/ (metaworld 3.1.1's files,
unchanged; SOURCE.md lists them), and rewritten where MJX cannot collide.

`load_models(xml_name)` returns the untouched model (what the real package simulates; the CPU backend uses it) and
the MJX model, plus a `CompatRecord` of every change made for MJX:

- Every collidable cylinder (contype or conaffinity non-zero) becomes a convex mesh: a regular prism with
  `CYLINDER_SIDES` sides inscribed in the cylinder, same pose. mujoco-mjx 3.3.0 has no (cylinder, box) or
  (cylinder, mesh) collision function, and once one cylinder of a pair is a mesh its cylinder partners must be
  meshes too (no (cylinder, mesh) either), so all collidable cylinders are converted. Visual cylinders are kept.
- Mesh convex hulls are bounded to `MAX_HULL_VERT` vertices (`maxhullvert`; the Sawyer hand hull has 800+).
- Where mjx still refuses the model because of contact margins, geoms with a margin (the gripper claws and pads,
  margin 1 mm) get margin 0 and, being boxes, grow by the margin on every side: mjx 3.3.0 implements no margin
  for (box, mesh) pairs, and the pads meet the meshes that replaced the cylinders. A contact with margin m is
  driven towards distance m, so the grown box keeps the gripper's grasp width (zeroing the margin alone let the
  fingers close 1 mm further on each side).
- Body masses and inertias are copied back from the untouched model, so the prisms change only collision shapes,
  not the dynamics of free motion.
Both models get the package's mocap weld data (`reset_mocap_welds`: relative quaternion (-1, 0, 0, 0), torque
scale 5) as the package sets it at construction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mujoco
import numpy as np

from envs.mjx_compat import Change

CYLINDER_SIDES = 16
MAX_HULL_VERT = 64
ASSETS_DIR = Path(__file__).with_name("assets")  # the package's assets/ layout: sawyer_xyz/, objects/, ...


@dataclasses.dataclass(frozen=True)
class CompatRecord:
    """What was changed in a model so that `mjx.put_model` accepts it."""

    xml: str
    cylinders_to_prisms: tuple[str, ...]  # "geom id (name) on body, radius r, half-length h"
    meshes_hull_bounded: tuple[str, ...]  # meshes whose hull had more than MAX_HULL_VERT vertices
    margins_zeroed: tuple[str, ...]  # geoms whose contact margin was set to 0
    unchanged_model_accepted_by_mjx: bool

    def changes(self) -> list[Change]:
        """The record as `mjx_compat.Change`s, the record type of every MJX rewrite (HumanoidBench's too)."""
        kinds = (("cylinder_to_prism", self.cylinders_to_prisms), ("maxhullvert", self.meshes_hull_bounded),
                 ("margin", self.margins_zeroed))
        out = []
        for kind, lines in kinds:
            for line in lines:
                target, detail = line.split(": ", 1)
                out.append(Change(kind, target if kind != "maxhullvert" else f"mesh {target}", detail))
        return out

    def summary(self) -> str:
        return (
            f"{self.xml}: {len(self.cylinders_to_prisms)} collidable cylinders -> {CYLINDER_SIDES}-sided prisms, "
            f"{len(self.meshes_hull_bounded)} mesh hulls bounded to {MAX_HULL_VERT} vertices, "
            f"{len(self.margins_zeroed)} geom margins set to 0; "
            f"untouched model accepted by mjx.put_model: {self.unchanged_model_accepted_by_mjx}"
        )


def xml_path(xml_name: str) -> str:
    """The shipped copy of the package's `assets/sawyer_xyz/<xml_name>` (its includes resolve beside it)."""
    return str(ASSETS_DIR / "sawyer_xyz" / xml_name)


def set_mocap_welds(model: mujoco.MjModel) -> None:
    """The package's `reset_mocap_welds`: every weld gets relpose quaternion (-1,0,0,0) and torque scale 5."""
    for i in range(model.neq):
        if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
            model.eq_data[i, :11] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]


def _prism_vertices(radius: float, half_length: float, sides: int) -> np.ndarray:
    angles = 2.0 * np.pi * np.arange(sides) / sides
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    top = np.concatenate([ring, np.full((sides, 1), half_length)], axis=1)
    bottom = np.concatenate([ring, np.full((sides, 1), -half_length)], axis=1)
    return np.concatenate([top, bottom], axis=0)


def _mjx_accepts(model: mujoco.MjModel) -> bool:
    from mujoco import mjx

    try:
        mjx.put_model(model)
    except NotImplementedError:
        return False
    return True


def load_reference_model(xml_name: str) -> mujoco.MjModel:
    """The package's model as the package simulates it (with its mocap weld data)."""
    model = mujoco.MjModel.from_xml_path(xml_path(xml_name))
    set_mocap_welds(model)
    return model


def _cylinders_to_prisms(xml_name: str, spec: mujoco.MjSpec, original: mujoco.MjModel) -> tuple[list[int], list[str]]:
    """Turns every collidable cylinder geom of `spec` into a prism mesh at its compiled pose; (geom ids, lines)."""
    spec_geoms = spec.worldbody.find_all(mujoco.mjtObj.mjOBJ_GEOM)
    if len(spec_geoms) != original.ngeom:
        raise RuntimeError(f"{xml_name}: spec has {len(spec_geoms)} geoms, model {original.ngeom}")
    converted, converted_ids = [], []
    for gid, geom in enumerate(spec_geoms):
        if original.geom_type[gid] != mujoco.mjtGeom.mjGEOM_CYLINDER:
            continue
        if not (original.geom_contype[gid] or original.geom_conaffinity[gid]):
            continue
        radius, half_length = (float(v) for v in original.geom_size[gid, :2])
        mesh = spec.add_mesh()
        mesh.name = f"mjx_prism_{gid}"
        mesh.uservert = _prism_vertices(radius, half_length, CYLINDER_SIDES).ravel().tolist()
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = mesh.name
        geom.fromto = [np.nan] * 6  # the compiled pose below replaces any fromto
        geom.pos = original.geom_pos[gid].tolist()
        geom.quat = original.geom_quat[gid].tolist()
        converted_ids.append(gid)
        body = mujoco.mj_id2name(original, mujoco.mjtObj.mjOBJ_BODY, original.geom_bodyid[gid]) or "?"
        converted.append(f"geom {gid} ({original.geom(gid).name or 'unnamed'}) on body {body}: "
                         f"radius {radius:.4g}, half-length {half_length:.4g}")
    return converted_ids, converted


def _bound_hulls(spec: mujoco.MjSpec) -> None:
    """Caps the convex hull of every mesh but the prisms at MAX_HULL_VERT vertices."""
    for mesh in spec.meshes:
        if not mesh.name.startswith("mjx_prism_"):
            mesh.maxhullvert = MAX_HULL_VERT


def _bounded_hulls(original: mujoco.MjModel, rewritten: mujoco.MjModel) -> list[str]:
    """The meshes whose hull vertex count changed, as "name: before -> after hull vertices"."""
    bounded = []
    for mid in range(original.nmesh):
        if original.mesh_graphadr[mid] < 0:  # no hull: the mesh collides with nothing
            continue
        before = original.mesh_graph[original.mesh_graphadr[mid]]
        after = rewritten.mesh_graph[rewritten.mesh_graphadr[mid]]
        if before != after:
            bounded.append(f"{original.mesh(mid).name}: {before} -> {after} hull vertices")
    return bounded


def _restore_dynamics(rewritten: mujoco.MjModel, original: mujoco.MjModel, converted_ids: list[int]) -> None:
    """Keep the dynamics of the untouched model: same masses and inertias, and the original geom poses."""
    for field in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "body_subtreemass"):
        getattr(rewritten, field)[:] = getattr(original, field)
    # MuJoCo re-centres mesh geoms on their inertial frame: restore the original geom poses. Not for the prisms:
    # the compiler also turns a mesh into its principal-axis frame and composes that rotation into the geom's
    # pose (a flat prism, such as the nail head, gets its axes permuted), so their compiled pose is the right one.
    kept = np.setdiff1d(np.arange(original.ngeom), converted_ids)
    rewritten.geom_pos[kept] = original.geom_pos[kept]
    rewritten.geom_quat[kept] = original.geom_quat[kept]


def _zero_margins(rewritten: mujoco.MjModel) -> list[str]:
    """Where mjx refuses the model, sets collidable geoms' margin and gap to 0 (boxes grow by the margin)."""
    zeroed = []
    for gid in range(rewritten.ngeom if not _mjx_accepts(rewritten) else 0):
        collidable = rewritten.geom_contype[gid] or rewritten.geom_conaffinity[gid]
        if collidable and (rewritten.geom_margin[gid] != 0 or rewritten.geom_gap[gid] != 0):
            inflate = rewritten.geom_margin[gid] - rewritten.geom_gap[gid]
            note = ""
            if rewritten.geom_type[gid] == mujoco.mjtGeom.mjGEOM_BOX and inflate > 0:
                # A contact with margin m pushes towards distance m: a box grown by m with margin 0 behaves alike.
                rewritten.geom_size[gid] += inflate
                rewritten.geom_rbound[gid] += np.sqrt(3.0) * inflate
                note = f", box half-sizes +{inflate:.4g}"
            zeroed.append(f"geom {gid} ({rewritten.geom(gid).name or 'unnamed'}): margin "
                          f"{rewritten.geom_margin[gid]:.4g}, gap {rewritten.geom_gap[gid]:.4g} -> 0{note}")
            rewritten.geom_margin[gid] = 0.0
            rewritten.geom_gap[gid] = 0.0
    return zeroed


def load_models(xml_name: str) -> tuple[mujoco.MjModel, mujoco.MjModel, CompatRecord]:
    """(untouched model, model rewritten for MJX, record of the rewrite)."""
    original = load_reference_model(xml_name)
    spec = mujoco.MjSpec.from_file(xml_path(xml_name))
    converted_ids, converted = _cylinders_to_prisms(xml_name, spec, original)
    _bound_hulls(spec)
    rewritten = spec.compile()
    bounded = _bounded_hulls(original, rewritten)
    _restore_dynamics(rewritten, original, converted_ids)
    set_mocap_welds(rewritten)
    zeroed = _zero_margins(rewritten)
    record = CompatRecord(
        xml=xml_name,
        cylinders_to_prisms=tuple(converted),
        meshes_hull_bounded=tuple(bounded),
        margins_zeroed=tuple(zeroed),
        unchanged_model_accepted_by_mjx=_mjx_accepts(original),
    )
    return original, rewritten, record
