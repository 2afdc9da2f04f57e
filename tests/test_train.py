"""The compiled trainer and the continual-RL driver on tiny Brax configurations."""

import json

import jax
import numpy as np
import pytest
from conftest import TINY, leaves_close, tiny

from purejaxsphere import make_train
from purejaxsphere.cli import main


@pytest.fixture(scope="module")
def three_seed_run():
    cfg = tiny("tasks=[brax/reacher]", "seeds=[0,1,2]", "total_timesteps=64", "diagnostics.enabled=true")
    return make_train(cfg)()


def test_vmapped_seeds_equal_single_seed_runs(three_seed_run):
    single = make_train(tiny("tasks=[brax/reacher]", "seeds=[1]", "total_timesteps=64"))()
    pick = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    leaves_close(pick(three_seed_run.state.actor_params, 1), pick(single.state.actor_params, 0), rtol=1e-5, atol=1e-6)
    leaves_close(pick(three_seed_run.state.obs_stats, 1), pick(single.state.obs_stats, 0), rtol=1e-5, atol=1e-6)
    # ... and the seeds really differ from each other.
    a, b = pick(three_seed_run.state.actor_params, 0), pick(three_seed_run.state.actor_params, 1)
    assert any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_one_member_is_computed_without_vmap():
    """A size-1 member axis is squeezed (plain matmuls), several are vmapped (batched matmuls); same values."""
    from purejaxsphere.programs import map_members

    fn = lambda w, x: {"y": x @ w}  # noqa: E731
    w, x = np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype(np.float32)

    def batch_dims(*args):
        (eqn,) = [e for e in jax.make_jaxpr(map_members(fn))(*args).eqns if e.primitive.name == "dot_general"]
        return eqn.params["dimension_numbers"][1]

    assert batch_dims(w[:1], x[:1]) == ((), ())
    assert batch_dims(w, x) == ((0,), (0,))
    np.testing.assert_allclose(map_members(fn)(w[:1], x[:1])["y"], (x[:1] @ w[:1]), rtol=1e-6)
    np.testing.assert_allclose(map_members(fn)(w, x)["y"], x @ w, rtol=1e-6)


def test_bootstrap_values_and_truncated_rewards():
    """One batched critic call gives each step's value and adds gamma * V(final obs) on truncated steps only."""
    from purejaxsphere.ppo import Transition
    from purejaxsphere.programs import bootstrap

    rng = np.random.default_rng(0)
    T, N, D = 3, 4, 5
    obs, final_obs = rng.normal(size=(2, T, N, D)).astype(np.float32)
    reward = rng.normal(size=(T, N)).astype(np.float32)
    truncation = (rng.random((T, N)) < 0.5).astype(np.float32)
    w = rng.normal(size=D).astype(np.float32)
    critic = lambda params, x: x @ params  # noqa: E731  (a linear critic: [B, D] -> [B])
    traj = Transition(obs, None, None, reward, truncation, truncation, final_obs)
    value, bootstrapped = bootstrap(critic, w, traj, 0.9)
    np.testing.assert_allclose(value, obs @ w, rtol=1e-5)
    np.testing.assert_allclose(bootstrapped, reward + 0.9 * (final_obs @ w) * truncation, rtol=1e-5, atol=1e-6)


def test_metrics_rows_per_seed_and_chunk(three_seed_run):
    rows = three_seed_run.metrics
    assert [(r["seed"], r["chunk"]) for r in rows] == [(0, 0), (1, 0), (2, 0)]
    row = rows[0]
    for key in ("policy_loss", "value_loss", "sphere_loss", "sphere_coef", "routing_entropy", "learning_rate",
                "eval_return", "steps_per_s", "approx_kl"):
        assert np.isfinite(row[key]), key
    assert row["env_steps"] == 64 and row["sphere_coef"] > 0  # default algo is SPHERE loss mode
    # Spectral diagnostics on the probe batch: ranks within [1, dimension], loads a distribution over 3 experts.
    for seed_row in rows:
        assert 1.0 <= seed_row["entk_rank"] <= 16 * 2  # entk_states x action size
        assert 1.0 <= seed_row["gram_rank"] <= 3 * 16  # experts x last hidden width
        assert 0.0 <= seed_row["dormant_ratio"] <= 1.0
        loads = [seed_row[f"routing_load_e{e}"] for e in range(3)]
        assert min(loads) >= 0 and abs(sum(loads) - 1.0) < 1e-5
        assert all(seed_row[key] == 0.0 for key in ("fault_loss", "fault_grad", "fault_params", "fault_obs"))
    assert rows[0]["entk_rank"] != rows[1]["entk_rank"]  # per seed, not a constant
    # An MJX state (a Brax mjx.Data with solver and contact fields) is never taken for a physics blow-up.
    assert not np.any(np.asarray(three_seed_run.state.env_state.info["physics_resets"]))


@pytest.fixture(scope="module")
def two_task_trainer():
    return make_train(tiny("tasks=[brax/reacher,brax/inverted_double_pendulum]", "seeds=2", "total_timesteps=64"))


def _state_after_first_task(trainer):
    programs = trainer.programs(0)
    state = trainer.fresh_state(0)
    state, _ = programs.chunk(state)
    return state


@pytest.mark.parametrize("protocol", ["crl", "rl"])
def test_driver_carries_params_and_normalizer_in_crl_only(two_task_trainer, protocol):
    trainer = two_task_trainer
    end_of_task1 = _state_after_first_task(trainer)
    trainer.cfg.protocol = protocol
    trainer.cfg.carry.params = trainer.cfg.carry.optimizer = trainer.cfg.carry.normalizer = protocol == "crl"
    start_of_task2 = trainer.start_task(1, end_of_task1)
    fresh = trainer.fresh_state(1)
    expected = end_of_task1 if protocol == "crl" else fresh
    leaves_close(start_of_task2.actor_params, expected.actor_params, rtol=0, atol=0)
    leaves_close(start_of_task2.critic_opt_state, expected.critic_opt_state, rtol=0, atol=0)
    leaves_close(start_of_task2.obs_stats, expected.obs_stats, rtol=0, atol=0)
    assert float(end_of_task1.obs_stats.count[0]) > 1  # the normalizer did learn in task 1
    # New task: fresh envs and a restarted learning rate either way.
    leaves_close(start_of_task2.env_state.obs, fresh.env_state.obs, rtol=0, atol=0)
    np.testing.assert_allclose(start_of_task2.learning_rate, trainer.cfg.ppo.learning_rate)


def test_cli_train_writes_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", *TINY, "tasks=[brax/reacher,brax/inverted_double_pendulum]", "seeds=2",
                 "total_timesteps=128", f"run_dir={run_dir}", "progress=false"])
    assert code == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2  # tasks x chunks x seeds
    assert {r["task"] for r in rows} == {"brax/reacher", "brax/inverted_double_pendulum"}
    matrix = json.loads((run_dir / "eval_matrix.json").read_text())
    ret = np.array(matrix["return"], dtype=float)  # None -> nan
    assert ret.shape == (2, 2, 2)
    assert np.isnan(ret[0, 1]).all() and np.isfinite(ret[0, 0]).all() and np.isfinite(ret[1]).all()
    assert "tasks:" in (run_dir / "config.yaml").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    # The paper's metric (each task after its own training) and the final policy's average, per seed.
    np.testing.assert_allclose(summary["average_return"], np.mean([ret[0, 0], ret[1, 1]], axis=0))
    np.testing.assert_allclose(summary["final_policy_average_return"], np.mean(ret[1], axis=0))
    assert summary["average_return_mean"] == pytest.approx(np.mean(summary["average_return"]))
    assert "average_success" not in summary  # Brax tasks have no success criterion
    out = capsys.readouterr().out.splitlines()
    done = next(i for i, line in enumerate(out) if line.startswith("purejaxsphere: done: 2 tasks x 2 seeds"))
    assert out[done + 2].split()[:2] == ["0", "brax/reacher"]
    assert out[done + 4].startswith("average return (paper metric, mean over tasks at the end of each): ")
    assert out[-2:] == [f"  purejaxsphere report {run_dir}", f"  purejaxsphere eval {run_dir}"]


def test_a_task_that_comes_back_does_not_recompile():
    trainer = make_train(tiny("tasks=[brax/reacher,brax/reacher]", "seeds=1", "total_timesteps=64"))
    rows = trainer().metrics
    compile_seconds = {row["task_index"]: row["compile_seconds"] for row in rows}
    assert compile_seconds[0] > 0 and compile_seconds[1] == 0.0
    assert len(trainer._compiled) == 1
