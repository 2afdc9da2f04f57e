"""The MJX rewrite of the MetaWorld models: what changed is exactly what the record says, and MJX accepts it."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import mujoco
import numpy as np
import pytest
from mujoco import mjx

import envs
import envs.metaworld as mw
from envs.metaworld.model import load_models
from envs.metaworld.tasks import TASKS

ACCEPTED_UNCHANGED = {"push-back-v3", "shelf-place-v3"}  # facts/metaworld.md: 2 of 10 pass mjx.put_model as is


@pytest.mark.parametrize("name", mw.CW10_NAMES)
def test_rewrite_record_matches_model(name):
    original, rewritten, record = load_models(TASKS[name].xml)
    assert record.unchanged_model_accepted_by_mjx == (name in ACCEPTED_UNCHANGED)
    mjx.put_model(rewritten)  # raises if MJX still cannot collide a pair
    assert (original.ngeom, original.nbody, original.nq, original.nv) == (
        rewritten.ngeom, rewritten.nbody, rewritten.nq, rewritten.nv)
    changed_type = np.nonzero(original.geom_type != rewritten.geom_type)[0]
    margin_changed = np.nonzero(original.geom_margin != rewritten.geom_margin)[0]
    assert len(margin_changed) == len(record.margins_zeroed)
    recorded = sorted(int(line.split()[1]) for line in record.cylinders_to_prisms)
    assert list(changed_type) == recorded
    for gid in changed_type:
        assert original.geom_type[gid] == mujoco.mjtGeom.mjGEOM_CYLINDER
        assert rewritten.geom_type[gid] == mujoco.mjtGeom.mjGEOM_MESH
        assert original.geom_contype[gid] or original.geom_conaffinity[gid]
    kept = np.setdiff1d(np.arange(original.ngeom), changed_type)
    np.testing.assert_array_equal(original.geom_pos[kept], rewritten.geom_pos[kept])
    np.testing.assert_array_equal(original.geom_quat[kept], rewritten.geom_quat[kept])
    grown = np.nonzero(np.any(original.geom_size != rewritten.geom_size, axis=1))[0]
    assert set(grown) <= set(margin_changed) | set(changed_type)
    np.testing.assert_array_equal(original.body_mass, rewritten.body_mass)
    np.testing.assert_array_equal(original.body_inertia, rewritten.body_inertia)
    # Both models carry the package's mocap weld data.
    welds = original.eq_type == mujoco.mjtEq.mjEQ_WELD
    np.testing.assert_array_equal(original.eq_data[welds, 6:11], [[-1.0, 0.0, 0.0, 0.0, 5.0]] * welds.sum())
    np.testing.assert_array_equal(original.eq_data, rewritten.eq_data)
    if name not in ACCEPTED_UNCHANGED:
        assert record.cylinders_to_prisms


def test_registry_and_protocol():
    names = [n for n in envs.list_tasks() if n.startswith("metaworld/")]
    assert names == sorted(f"metaworld/{n}" for n in mw.CW10_NAMES)
    env = envs.make("metaworld/window-close-v3")
    assert (env.observation_size, env.action_size, env.episode_length, env.has_success) == (39, 4, 500, True)
    assert env.name == "metaworld/window-close-v3"
    assert envs.make("metaworld/push-v3", episode_length=200).episode_length == 200


def _quat_matrix(quat) -> np.ndarray:
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, np.float64))
    return mat.reshape(3, 3)


def _mesh_vertices_in_body(model, gid) -> np.ndarray:
    mid = model.geom_dataid[gid]
    verts = model.mesh_vert[model.mesh_vertadr[mid]:model.mesh_vertadr[mid] + model.mesh_vertnum[mid]]
    return verts @ _quat_matrix(model.geom_quat[gid]).T + model.geom_pos[gid]


@pytest.mark.parametrize("name", mw.CW10_NAMES)
def test_rewritten_collision_shapes_sit_where_the_originals_do(name):
    """Every prism's vertices lie on its cylinder's rim (in the body frame, so a wrong geom pose fails), and every
    other collidable mesh spans the same body-frame box as in the untouched model. MuJoCo turns each mesh into its
    principal-axis frame, which permutes a flat prism's axes: hammer's nail head and faucet's handle were once
    rotated by 90 degrees this way, and the hammer hit the nail 4 cm early."""
    original, rewritten, _ = load_models(TASKS[name].xml)
    for gid in range(rewritten.ngeom):
        if rewritten.geom_type[gid] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        if not (rewritten.geom_contype[gid] or rewritten.geom_conaffinity[gid]):
            continue
        verts = _mesh_vertices_in_body(rewritten, gid)
        if original.geom_type[gid] == mujoco.mjtGeom.mjGEOM_CYLINDER:
            radius, half_length = original.geom_size[gid, :2]
            local = (verts - original.geom_pos[gid]) @ _quat_matrix(original.geom_quat[gid])
            np.testing.assert_allclose(np.abs(local[:, 2]), half_length, atol=1e-9, err_msg=f"geom {gid}")
            np.testing.assert_allclose(np.linalg.norm(local[:, :2], axis=1), radius, atol=1e-9,
                                       err_msg=f"geom {gid}")
        else:
            reference = _mesh_vertices_in_body(original, gid)
            np.testing.assert_allclose(verts.min(0), reference.min(0), atol=1e-9, err_msg=f"geom {gid}")
            np.testing.assert_allclose(verts.max(0), reference.max(0), atol=1e-9, err_msg=f"geom {gid}")
