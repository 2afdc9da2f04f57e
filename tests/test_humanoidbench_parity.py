"""MJX backend vs CPU backend from identical states under identical actions (envs.humanoidbench.parity).

Tolerances are the measured figures of docs/parity_humanoidbench.md with a margin of 2-5x:
- lifted 2 m (no contacts), 3 steps: MJX equals C MuJoCo to float32 precision (measured qpos <= 1e-6,
  qvel <= 1e-5, rewards <= 1e-7), through the same JAX task code: this checks the whole MJX pipeline (model,
  controls, substeps, extraction) against C.
- on the floor: the compat rewrite (feet-only contacts, 32-vertex hulls) and MJX's own collision differ from
  the untouched model: measured over 3 steps, hold actions: qpos <= 1e-2, reward <= 4e-3; random actions:
  qpos <= 1e-1, reward <= 3e-2 (h1_walk), reward terms <= 9e-2 (h1_pole).
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import numpy as np
import pytest

from envs.humanoidbench import parity

STEPS = 3
BOUNDS = {  # scenario: (qpos, qvel, reward and terms), max abs over STEPS steps
    "lifted/hold": (1e-5, 1e-4, 1e-5),
    "lifted/random": (1e-5, 1e-4, 1e-5),
    "floor/hold": (5e-2, 3.0, 2e-2),
    "floor/random": (3e-1, 30.0, 2e-1),
}


def check(result):
    for scen, (bq, bv, br) in BOUNDS.items():
        d = result[("cpu~mjx", scen)]
        assert d["qpos"].max() <= bq, (scen, d)
        assert d["qvel"].max() <= bv, (scen, d)
        assert max(d["reward"].max(), d["terms"].max()) <= br, (scen, d)
    # the rewrite changes nothing while there are no contacts (and no self-collisions within 3 steps)
    for scen in ("lifted/hold", "lifted/random"):
        assert result[("cpu~compat", scen)]["qpos"].max() == 0.0


def test_mjx_matches_cpu_h1_walk():
    # h1_stand and h1_run share h1_walk's model and physics; only their JAX rewards differ (tested on CPU).
    check(parity.measure("h1_walk", steps=STEPS, n_per=2))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["h1_stand", "h1_run", "h1_pole", "h1_slide"])
def test_mjx_matches_cpu_other_tasks(task):
    check(parity.measure(task, steps=STEPS, n_per=2))


def test_compat_record_is_reviewable():
    from envs.humanoidbench import get_spec
    from envs.humanoidbench.h1 import MjxBackend

    backend = MjxBackend(get_spec("h1_slide"), 100, 50, 32)
    kinds = {c.kind for c in backend.record}
    assert {"name", "maxhullvert", "contact_bits", "contacts", "visual_mesh_hull"} <= kinds
    contacts = [c for c in backend.record if c.kind == "contacts"]
    assert len(contacts) == 1 and "left_ankle_link_collision" in contacts[0].detail
    assert "slide_collision_8" in contacts[0].detail and "floor" in contacts[0].detail
    m = backend.mj_model
    # only feet-terrain pairs can collide: the bitmask test passes for exactly 2 x 10 geom pairs
    ct, ca = m.geom_contype, m.geom_conaffinity
    ok = ((ct[:, None] & ca[None, :]) | (ct[None, :] & ca[:, None])) != 0
    assert int(np.triu(ok).sum()) == 20
    assert all(str(c) for c in backend.record)


def test_untouched_model_is_not_mjx_compatible():
    """The reason for the rewrite: MJX cannot build HumanoidBench's model as is (cylinder-mesh pairs)."""
    from mujoco import mjx

    from envs.humanoidbench import get_spec
    from envs.humanoidbench.h1 import load_model

    with pytest.raises(NotImplementedError):
        mjx.put_model(load_model(get_spec("h1_walk"), libccd=False))
