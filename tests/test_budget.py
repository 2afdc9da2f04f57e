"""A budget is a budget: how `total_timesteps` and `eval.interval` become PPO updates and chunks (train.plan_task),
and the trainer runs exactly that many updates, a task's shorter last chunk inside the same compiled program."""

import jax
import numpy as np
import pytest
from conftest import leaves_close, tiny

from purejaxsphere import load_config, make_train
from purejaxsphere.driver import plan_notes
from purejaxsphere.programs import plan_task


def plan_for(num_envs, n_steps, total, interval):
    cfg = load_config(f"num_envs={num_envs}", f"ppo.n_steps={n_steps}", f"ppo.minibatch_size={num_envs}",
                      f"total_timesteps={total}", f"eval.interval={interval}")
    return cfg, plan_task(cfg)


def test_budget_below_the_eval_interval_is_one_chunk_of_the_budget():
    """The run of issue 15: CW10 with 8 envs and 4096 steps trained 99,968 steps per task before."""
    cfg, plan = plan_for(8, 16, 4096, 100_000)
    assert (plan.total_updates, plan.updates_per_chunk, plan.n_chunks, plan.total_steps) == (32, 32, 1, 4096)
    notes = plan_notes(cfg, plan)
    assert len(notes) == 1 and "more than the budget" in notes[0]


def test_paper_budget_never_trains_a_whole_update_past_it():
    """HumanoidBench: 10M steps of 128 envs x 16 steps = 4882.8 updates -> 4883, in chunks of 49 (100,352 steps;
    the eval interval is 100k), the last one 4883 - 99 * 49 = 32 updates."""
    cfg, plan = plan_for(128, 16, 10_000_000, 100_000)
    assert (plan.total_updates, plan.updates_per_chunk, plan.n_chunks) == (4883, 49, 100)
    assert plan.updates_in_chunk(98) == 49 and plan.updates_in_chunk(99) == 32
    assert plan.total_steps == 4883 * 2048 and 0 <= plan.total_steps - 10_000_000 < 2048
    assert plan.steps_after(99) == 99 * 49 * 2048 and plan.steps_after(100) == plan.total_steps
    notes = " | ".join(plan_notes(cfg, plan))
    assert "rounded up to 10,000,384" in notes and "rounded to 100,352" in notes and "runs 32 of 49" in notes


@pytest.mark.parametrize("num_envs,n_steps,total,interval", [
    (4, 8, 64, 64), (4, 8, 65, 64), (4, 8, 160, 96), (32, 32, 49_152, 16_384), (7, 3, 1000, 50), (1, 1, 1, 10**6),
    (16, 16, 100_000, 10_000), (128, 16, 1_000_000, 100_000),
])
def test_plan_covers_the_budget_exactly(num_envs, n_steps, total, interval):
    cfg, plan = plan_for(num_envs, n_steps, total, interval)
    batch = num_envs * n_steps
    assert plan.batch_size == batch and plan.total_updates == -(-total // batch)
    assert 0 <= plan.total_steps - total < batch  # never a whole update past the budget
    chunks = [plan.updates_in_chunk(c) for c in range(plan.n_chunks)]
    assert sum(chunks) == plan.total_updates
    assert all(n == plan.updates_per_chunk for n in chunks[:-1]) and 1 <= chunks[-1] <= plan.updates_per_chunk
    assert plan.updates_per_chunk * batch <= max(interval + batch, batch)  # a chunk is about eval.interval
    if plan.total_steps == total and plan.steps_per_chunk == interval and total % interval == 0:
        assert plan_notes(cfg, plan) == []  # nothing rounded, nothing said


@pytest.fixture(scope="module")
def short_last_chunk_run():
    """5 updates per task in chunks of 3: the last chunk runs 2 of its 3 updates."""
    return make_train(tiny("tasks=[brax/reacher]", "seeds=2", "eval.interval=96", "total_timesteps=160"))()


def test_trainer_runs_exactly_the_planned_updates(short_last_chunk_run):
    result = short_last_chunk_run
    assert np.asarray(result.state.update_step).tolist() == [5, 5]
    steps = sorted({(row["chunk"], row["env_steps"]) for row in result.metrics})
    assert steps == [(0, 96), (1, 160)]


def test_masked_chunk_equals_a_chunk_of_that_length():
    """Chunk program of 3 updates told to run 2 == the chunk program of 2 updates (state and summary)."""
    three = make_train(tiny("tasks=[brax/reacher]", "seeds=2", "eval.interval=96", "total_timesteps=96"))
    two = make_train(tiny("tasks=[brax/reacher]", "seeds=2", "eval.interval=64", "total_timesteps=64"))
    start = two.fresh_state(0)
    leaves_close(start, three.fresh_state(0), rtol=0, atol=0)
    masked, masked_summary = three.programs(0).chunk(start, np.int32(2))
    full, full_summary = two.programs(0).chunk(start)
    leaves_close(masked, full, rtol=1e-6, atol=1e-7)
    assert np.asarray(masked.update_step).tolist() == [2, 2]
    masked_summary, full_summary = jax.device_get((masked_summary, full_summary))
    for key, value in full_summary.items():
        np.testing.assert_allclose(masked_summary[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    # ... and the third update really is skipped, not run and discarded into the same numbers by chance.
    ran_three, _ = three.programs(0).chunk(start, np.int32(3))
    assert np.asarray(ran_three.update_step).tolist() == [3, 3]
    assert not np.allclose(np.asarray(jax.tree.leaves(ran_three.actor_params)[0]),
                           np.asarray(jax.tree.leaves(masked.actor_params)[0]))

