"""`purejaxsphere eval RUN_DIR`: a trained run's checkpoint evaluated on MJX, C MuJoCo and the real metaworld package
(run by mw-oracle in its own environment, envs/metaworld/oracle.py).

Two tiny runs are trained once per module through the CLI: a Brax run (2 seeds, 2 chunks, seed 1 dropped after a
NaN injected into its second chunk) and a MetaWorld push-v3 run on C MuJoCo (1 seed, 500-step episodes: the
package's). Measured on the MetaWorld run: the port (physics="cpu") and the package follow the same policy with
observations within 3e-6 over 500 steps and returns 9.70875 vs 9.70879.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY
from faults import inject_nan

import envs
from purejaxsphere import evaluate, load_config
from purejaxsphere.cli import main

QUIET = ["wandb.mode=disabled", "progress=false"]


@pytest.fixture(scope="module")
def brax_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "brax"
    overrides = [*TINY, *QUIET, "tasks=[brax/reacher]", "seeds=2", "total_timesteps=64",
                 "eval.interval=32",  # 1 update per chunk: checkpoints t000_c00001 and t000_c00002
                 "fault.on_nan=drop_seed"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        inject_nan(monkeypatch, load_config(*overrides), seed=1, task_index=0, chunk=1)
        code = main(["train", *overrides, f"run_dir={run_dir}"])
    assert code == 0
    return run_dir


def read(path):
    return json.loads(path.read_text())


def test_eval_mjx_reproduces_the_trainers_final_evaluation(brax_run):
    assert main(["eval", str(brax_run), "--backend", "mjx"]) == 0
    out = read(brax_run / "eval_mjx.json")
    matrix = read(brax_run / "eval_matrix.json")
    assert out["checkpoint"] == "t000_c00002" and out["episodes"] == 2 and out["tasks"] == ["brax/reacher"]
    # Seed 0: the same compiled evaluation, keys and episodes as the trainer's end-of-task row: bit for bit.
    assert out["return"][0][0] == matrix["return"][-1][0][0]
    assert out["return"][0][0] == read(brax_run / "summary.json")["final_policy_average_return"][0]
    assert out["length"][0][0] == 20.0 and out["success"][0] == [None, None]  # Brax has no success criterion
    # Seed 1 was dropped: null in the trainer's matrix, evaluated (frozen policy) but marked and left out here.
    assert matrix["return"][-1][0][1] is None and np.isfinite(out["return"][0][1])
    assert out["dropped_seeds"] == [1]
    assert out["mean_return"][0] == out["return"][0][0] == out["average_return"]


def test_eval_named_checkpoint_to_out_file(brax_run, tmp_path):
    out_file = tmp_path / "early.json"
    assert main(["eval", str(brax_run), "--checkpoint", "t000_c00001", "--tasks", "0", "--out", str(out_file)]) == 0
    early, final = read(out_file), read(brax_run / "eval_mjx.json")
    assert early["checkpoint"] == "t000_c00001" and early["trained_through"]["chunks_done"] == 1
    # The dropped seed was frozen at its state after chunk 0, so both checkpoints hold the same policy for it
    # (and both evaluations use the keys of task 0's matrix row); seed 0 trained one more chunk in between.
    assert early["return"][0][1] == final["return"][0][1]
    assert early["return"][0][0] != final["return"][0][0]


def test_bad_inputs_exit_2_with_one_line(brax_run, tmp_path, capsys):
    no_checkpoints = tmp_path / "no_checkpoints"
    no_checkpoints.mkdir()
    (no_checkpoints / "config.yaml").write_text((brax_run / "config.yaml").read_text())
    cases = {
        "is not a directory": [str(tmp_path / "missing")],
        "not a run directory": [str(tmp_path)],
        "no usable checkpoint": [str(no_checkpoints)],
        "no checkpoint 't009_c00001'": [str(brax_run), "--checkpoint", "t009_c00001"],
        "MetaWorld tasks only": [str(brax_run), "--backend", "metaworld"],
        "Brax tasks run on MJX only": [str(brax_run), "--backend", "cpu"],
        "is not one of mjx, cpu, metaworld": [str(brax_run), "--backend", "gpu"],
        "outside 0..0": [str(brax_run), "--tasks", "1"],
    }
    for expected, args in cases.items():
        capsys.readouterr()
        assert main(["eval", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (args, err)


@pytest.fixture(scope="module")
def metaworld_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "metaworld"
    code = main(["train", *TINY, *QUIET, "tasks=[metaworld/push-v3]", "physics=cpu", "seeds=1",
                 "episode_length=500", "eval.episodes=1", "total_timesteps=32", "eval.interval=32",
                 f"run_dir={run_dir}"])
    assert code == 0
    return run_dir


def test_cpu_and_metaworld_backends_agree(metaworld_run):
    assert main(["eval", str(metaworld_run), "--backend", "cpu"]) == 0
    assert main(["eval", str(metaworld_run), "--backend", "metaworld", "--episodes", "2"]) == 0
    cpu, package = read(metaworld_run / "eval_cpu.json"), read(metaworld_run / "eval_metaworld.json")
    matrix = read(metaworld_run / "eval_matrix.json")
    assert cpu["return"][0][0] == matrix["return"][-1][0][0]  # the training physics: the trainer's own numbers
    assert package["length"][0][0] == cpu["length"][0][0] == 500.0 and package["notes"] == []
    assert package["episodes"] == 2 and cpu["episodes"] == 1  # fixed positions: both episodes are the same
    np.testing.assert_allclose(package["return"][0][0], cpu["return"][0][0], rtol=1e-3)
    assert package["success"] == cpu["success"]
    # The package env used the training env's object and goal positions, and says so.
    positions = package["positions"]["metaworld/push-v3"]
    assert positions["mode"].startswith("fixed")
    expected = envs.make("metaworld/push-v3", physics="cpu").fixed_rand_vec
    np.testing.assert_array_equal(positions["rand_vec"], expected)


def test_package_and_port_observations_match_under_the_trained_policy(metaworld_run):
    """Step by step, the same policy in the package (mw-oracle's pipe, evaluate.lockstep_rollout) and in the port
    with physics="cpu"."""
    cfg = evaluate.run_config(metaworld_run)
    trainer = evaluate.build_trainer(cfg)
    state = evaluate.restore(evaluate.choose_checkpoint(metaworld_run, None, print), trainer).state
    act = evaluate.make_act_fn(trainer)
    policy = lambda obs: act(state.actor_params, state.obs_stats, obs)  # noqa: E731
    task, steps = trainer.tasks[0], 30
    env, first = evaluate.reference_env(task.name, task.fixed_rand_vec)
    package = evaluate.lockstep_rollout([[env]], first[None, None], policy, steps)
    port_state, step = jax.jit(task.reset)(jax.random.PRNGKey(0)), jax.jit(task.step)
    port_obs, port_rewards = [np.asarray(port_state.obs)], []
    for _ in range(steps):
        port_state = step(port_state, jnp.asarray(policy(port_obs[-1][None, None])[0, 0]))
        port_obs.append(np.asarray(port_state.obs))
        port_rewards.append(float(port_state.reward))
    np.testing.assert_allclose(np.stack(port_obs), package.obs[:, 0, 0], atol=1e-5)
    np.testing.assert_allclose(port_rewards, package.rewards[:, 0, 0], atol=1e-4)
