"""The MJX rewrite of the MetaWorld models: what changed is exactly what the record says, and MJX accepts it."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mujoco import mjx  # noqa: E402

import envs  # noqa: E402
import envs.metaworld as mw  # noqa: E402
from envs.metaworld.model import load_models  # noqa: E402
from envs.metaworld.tasks import TASKS  # noqa: E402

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
    np.testing.assert_array_equal(original.geom_pos, rewritten.geom_pos)
    grown = np.nonzero(np.any(original.geom_size != rewritten.geom_size, axis=1))[0]
    assert set(grown) <= set(margin_changed) | set(changed_type)
    np.testing.assert_array_equal(original.geom_quat, rewritten.geom_quat)
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
