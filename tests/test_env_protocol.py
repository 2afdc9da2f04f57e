"""Every task family offers what the tools read through the Env protocol (envs.core.Env: `mj_model`, `n_substeps`,
`dt`, `physics`), checked against each suite's own source of truth: Brax's env, HumanoidBench's CPU backend and the
real `metaworld` env."""

import numpy as np
import pytest

import envs
from envs.core import Env
from envs.metaworld import oracle
from envs.metaworld.model import load_reference_model
from envs.testing import PointMass


def same_model(a, b) -> bool:
    """The same MuJoCo model as far as simulation goes: sizes, geoms, bodies and timestep."""
    fields = ("geom_type", "geom_size", "geom_contype", "geom_conaffinity", "body_mass", "body_pos", "qpos0")
    sizes = ("nq", "nv", "nu", "ngeom", "nbody")
    return (all(getattr(a, n) == getattr(b, n) for n in sizes) and a.opt.timestep == b.opt.timestep
            and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields))


def check_protocol(task) -> None:
    assert isinstance(task, Env)
    assert task.dt == pytest.approx(task.mj_model.opt.timestep * task.n_substeps, rel=1e-6)
    assert task.physics in ("mjx", "cpu")


def test_brax_task_reports_the_model_and_frame_skip_brax_steps():
    task = envs.make("brax/reacher")
    check_protocol(task)
    # Brax's own dt (its sys timestep times its frame skip) is what the protocol's model and substeps give
    assert float(task.brax_env.dt) == pytest.approx(task.mj_model.opt.timestep * task.n_substeps, rel=1e-6)
    assert task.n_substeps > 1 and task.physics == "mjx"


def test_humanoidbench_mj_model_is_what_the_cpu_backend_steps():
    mjx_task = envs.make("humanoidbench/h1_stand")
    cpu_task = envs.make("humanoidbench/h1_stand", physics="cpu", num_threads=1)
    for task in (mjx_task, cpu_task):
        check_protocol(task)
        assert task.n_substeps == 10 and task.dt == pytest.approx(0.02)  # HumanoidBench: 10 substeps of 2 ms
        assert same_model(task.mj_model, cpu_task.backend.mj_model)
    assert not same_model(mjx_task.mj_model, mjx_task.backend.mj_model)  # MJX steps the rewrite
    assert mjx_task.compat_record and cpu_task.compat_record == []


@pytest.mark.parametrize("physics", ["mjx", "cpu"])
def test_metaworld_mj_model_and_step_match_the_package(physics):
    task = envs.make("metaworld/push-v3", physics=physics, num_threads=1) if physics == "cpu" else envs.make(
        "metaworld/push-v3")
    check_protocol(task)
    # The package's env lives in mw-oracle's process: its facts come over the pipe, its model from the same XML
    # (the shipped copy, checked byte for byte against the package's in tests/test_metaworld_assets.py).
    facts = oracle.shared().describe("push-v3")
    assert task.n_substeps == facts["frame_skip"]
    assert task.dt == pytest.approx(facts["timestep"] * facts["frame_skip"])
    m = task.mj_model
    assert (m.nq, m.nv, m.nu, m.nbody, m.ngeom, m.nmocap) == tuple(
        facts[k] for k in ("nq", "nv", "nu", "nbody", "ngeom", "nmocap"))
    assert same_model(m, load_reference_model(facts["xml"].removeprefix("sawyer_xyz/")))
    assert {c.kind for c in task.compat_record} == {"cylinder_to_prism", "maxhullvert", "margin"}


def test_point_mass_fake_implements_the_protocol():
    task = PointMass(action_size=3, observation_size=6)
    check_protocol(task)
    assert task.mj_model.nu == task.action_size == 3 and task.observation_size == 6


def test_brax_env_for_gives_brax_its_own_env_or_our_task_behind_its_interface():
    import jax
    import jax.numpy as jnp

    from envs.brax_tasks import brax_env_for

    reacher = envs.make("brax/reacher")
    assert brax_env_for(reacher) is reacher.brax_env
    task = PointMass(action_size=2)
    adapter = brax_env_for(task)
    assert (adapter.observation_size, adapter.action_size, adapter.backend) == (3, 2, "mjx")
    state = adapter.reset(jax.random.PRNGKey(0))
    action = jnp.array([3.0, -0.5])  # Brax's PPO samples unbounded actions: the adapter clips them to [-1, 1]
    stepped = adapter.step(state, action)
    ours = task.step(task.reset(jax.random.PRNGKey(0)), jnp.array([1.0, -0.5]))
    np.testing.assert_array_equal(stepped.obs, ours.obs)
    assert float(stepped.reward) == float(ours.reward)
