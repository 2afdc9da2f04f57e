"""mw-oracle (envs/metaworld/oracle.py): the real metaworld 3.1.1 in its own virtual environment behind a pipe.

Checked here: the wire format is exact; the project never imports `metaworld`; the hardcoded task names and
constants of the port are the package's; the oracle's commands agree with each other (a rollout from a reported
state continues the trajectory bit for bit, lockstep stepping equals one-by-one stepping, the expert rollout is
the expert's actions); and concurrent first uses build the environment once.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import envs.metaworld as mw
from envs import registry
from envs.metaworld import oracle
from envs.metaworld import oracle_protocol as wire

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    with oracle.Oracle() as o:
        yield o


def test_wire_format_is_exact():
    rng = np.random.default_rng(0)
    message = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": [rng.standard_normal(5), 7, "x"],
               "c": {"d": np.arange(6, dtype=np.int32).reshape(2, 3), "e": np.float64(np.pi), "f": None}}
    line = wire.dumps(message)
    assert line.endswith("\n") and "\n" not in line[:-1]
    back = wire.loads(line)
    assert back["a"].dtype == np.float32 and back["c"]["d"].dtype == np.int32
    np.testing.assert_array_equal(back["a"], message["a"])
    np.testing.assert_array_equal(back["b"][0], message["b"][0])
    np.testing.assert_array_equal(back["c"]["d"], message["c"]["d"])
    assert back["b"][1:] == [7, "x"] and back["c"]["e"] == np.pi and back["c"]["f"] is None


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_project_does_not_import_metaworld():
    server_file = ROOT / "envs/metaworld/oracle_server.py"  # runs in the oracle's environment only
    sources = [p for d in ("purejaxsphere", "envs", "scripts", "tests") for p in (ROOT / d).rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if p != server_file and "metaworld" in _imported_modules(p)]
    assert offenders == []
    assert "metaworld" in _imported_modules(server_file)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if d.startswith("metaworld")]
    code = ("import sys, envs, envs.metaworld.parity, envs.metaworld.oracle, purejaxsphere.evaluate; "
            "print('metaworld' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_task_names_and_constants_are_the_packages(server):
    from envs.metaworld.tasks import TASKS

    assert set(mw.CW10_NAMES) <= set(server.tasks())
    assert [n for n in registry.TASK_NAMES if n.startswith("metaworld/")] == [f"metaworld/{n}" for n in mw.CW10_NAMES]
    for name in mw.CW10_NAMES:
        facts, cls = server.describe(name), TASKS[name]
        assert facts["xml"] == f"sawyer_xyz/{cls.xml}", name
        assert (facts["max_path_length"], facts["frame_skip"], facts["action_scale"]) == (500, 5, 0.01)
        assert (facts["metaworld"], facts["mujoco"]) == ("3.1.1", "3.3.0")
        np.testing.assert_allclose(facts["rand_low"], cls.rand_low, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["rand_high"], cls.rand_high, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["hand_init_pos"], cls.hand_init_pos, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["mocap_low"], cls.hand_low, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["mocap_high"], cls.hand_high, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["goal_low"], cls.goal_low, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(facts["goal_high"], cls.goal_high, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(facts["observation_low"][36:], facts["goal_low"], err_msg=name)
        np.testing.assert_array_equal(facts["observation_high"][36:], facts["goal_high"], err_msg=name)


def test_reset_reports_positions_from_the_seed(server):
    a, b, c = (server.make("metaworld/push-v3", seed=s) for s in (1, 1, 2))
    obs_a, _ = a.reset()
    obs_b, _ = b.reset()
    c.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.allclose(a.rand_vec, c.rand_vec)
    # push-v3: puck and goal (obs[36:39]) at the reset vector's (x, y) pairs; both heights are the puck's.
    np.testing.assert_allclose(a.state["objects"][:2], a.rand_vec[:2], atol=1e-12)
    np.testing.assert_allclose(a.state["goal"][:2], a.rand_vec[3:5], atol=1e-12)
    assert a.state["goal"][2] == a.state["objects"][2]
    np.testing.assert_array_equal(obs_a[36:], a.state["goal"])
    np.testing.assert_array_equal(obs_a[:18], a.state["prev_obs"])
    frozen = server.make("push-v3", seed=5, rand_vec=a.rand_vec)
    frozen.reset()
    np.testing.assert_array_equal(frozen.reset()[0], obs_a)  # the frozen vector puts puck and goal there
    for env in (a, b, c, frozen):
        env.close()


def test_rollout_from_a_reported_state_continues_the_trajectory(server):
    env = server.make("stick-pull-v3", seed=3)
    first, _ = env.reset()
    expert = env.expert_rollout(60)  # through the grasp: contacts in the state
    later = server.make("stick-pull-v3", seed=3)
    later.reset()
    start = {k: v[29] for k, v in expert["state"].items()}
    replay = later.rollout(expert["action"][30:], state=start)
    np.testing.assert_array_equal(replay["obs"], expert["obs"][30:])
    np.testing.assert_array_equal(replay["reward"], expert["reward"][30:])
    np.testing.assert_array_equal(replay["state"]["qpos"], expert["state"]["qpos"][30:])
    unreset = server.make("stick-pull-v3", seed=3)
    with pytest.raises(oracle.OracleError, match="reset or step it first"):
        unreset.expert_rollout(1)  # no observation returned yet: nothing for the expert to act on
    unreset.close()
    # The expert rollout is the expert acting on what the env returns, step by step from the reset observation.
    manual = server.make("stick-pull-v3", seed=3)
    obs, _ = manual.reset()
    np.testing.assert_array_equal(obs, first)
    for t in range(60):
        action = server.expert("stick-pull-v3", obs)
        assert action.dtype == np.float32
        np.testing.assert_array_equal(action, expert["action"][t])
        obs, reward, _, _, _ = manual.step(action)
        np.testing.assert_array_equal(obs, expert["obs"][t])
        assert reward == expert["reward"][t]
    for e in (env, later, manual):
        e.close()


def test_lockstep_equals_one_by_one(server):
    rng = np.random.default_rng(0)
    grid = [server.make("faucet-close-v3", seed=s) for s in (0, 1, 2)]
    solo = [server.make("faucet-close-v3", seed=s) for s in (0, 1, 2)]
    for env in grid + solo:
        env.reset()
    for _ in range(5):
        actions = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
        together = server.step_many(grid, actions)
        for i, env in enumerate(solo):
            obs, reward, _, truncated, info = env.step(actions[i])
            np.testing.assert_array_equal(together["obs"][i], obs)
            assert together["reward"][i] == reward and together["truncated"][i] == truncated
            assert together["info"]["success"][i] == info["success"]
    with pytest.raises(oracle.OracleError, match="no env"):
        server.request("step", env=10_000, action=np.zeros(4))


def test_concurrent_first_use_builds_once(tmp_path, monkeypatch):
    """Two processes ask for a fresh oracle environment at once: one builds it (under the lock), the other waits
    and uses it. (The requirements are replaced by pip itself, so the check needs no package index.)"""
    venv = tmp_path / "venv"
    code = ("import sys; from envs.metaworld import oracle; oracle.REQUIREMENTS = ('pip',); "
            f"print(oracle.ensure_venv({str(venv)!r}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("building" in err for _, err in outs) == 1, outs
    assert {out.strip() for out, _ in outs} == {str(venv / "bin" / "python")}
    assert (venv / oracle.MARKER).read_text() == "pip"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "print(1)"], capture_output=True).returncode == 0
