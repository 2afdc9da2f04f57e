"""Sweeps: a list of values of one float hyperparameter runs as more members of the same compiled program."""

import json

import numpy as np
import pytest
from conftest import TINY

from purejaxsphere import load_config, make_train
from purejaxsphere.cli import main
from purejaxsphere.config import ConfigError

ONE_TASK = [
    *TINY, "diagnostics.enabled=true", "tasks=[brax/reacher]", "total_timesteps=64", "progress=false",
    "wandb.mode=disabled", "checkpoint.enabled=false", "algo=moe_topk_sphere", "seeds=[3]",
]
COMPARED = ("policy_loss", "value_loss", "sphere_loss", "sphere_coef", "approx_kl", "eval_return", "entk_rank")


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sweep") / "run"
    assert main(["train", *ONE_TASK, "sweep.key=sphere.ratio", "sweep.values=[0.0,0.5]", f"run_dir={run_dir}"]) == 0
    return run_dir


def rows_of(run_dir):
    from purejaxsphere.logging import read_metrics

    return read_metrics(run_dir)


def test_sweep_members_equal_separate_runs(sweep_run):
    rows = rows_of(sweep_run)
    assert [(r["seed"], r["sweep_value"]) for r in rows] == [(3, 0.0), (3, 0.5)]
    assert rows[0]["sphere_coef"] == 0.0 and rows[1]["sphere_coef"] > 0.0  # the value reaches the update
    # The member with ratio 0.5 trains exactly as a separate run with sphere.ratio=0.5 and the same seed.
    alone = make_train(load_config(*ONE_TASK, "sphere.ratio=0.5"))().metrics[0]
    for key in COMPARED:
        np.testing.assert_allclose(rows[1][key], alone[key], rtol=1e-5, atol=1e-7, err_msg=key)
    # The member with ratio 0 trains as Top-K MoE without SPHERE (algo=moe_topk, sphere.mode=off): one sweep program
    # compares the two algorithms (docs/learning.md's CRL study).
    without = [o for o in ONE_TASK if not o.startswith("algo=")] + ["algo=moe_topk"]
    topk = make_train(load_config(*without))().metrics[0]
    for key in COMPARED:
        np.testing.assert_allclose(rows[0][key], topk[key], rtol=1e-5, atol=1e-7, err_msg=key)
    matrix = json.loads((sweep_run / "eval_matrix.json").read_text())
    assert matrix["sweep_key"] == "sphere.ratio" and matrix["sweep_values"] == [0.0, 0.5]
    assert matrix["seeds"] == [3, 3]


def test_one_compiled_program_serves_the_whole_sweep():
    trainer = make_train(load_config(*ONE_TASK, "sweep.key=ppo.learning_rate", "sweep.values=[1e-4,1e-3,3e-3]"))
    state = trainer.initial_state()
    np.testing.assert_allclose(np.asarray(state.learning_rate), [1e-4, 1e-3, 3e-3], rtol=1e-6)
    assert trainer.seeds == [3, 3, 3]


def test_report_draws_one_curve_per_swept_value(sweep_run, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(sweep_run), "--out", str(out)]) == 0
    table = (out / "summary.md").read_text()
    assert "sphere.ratio=0" in table and "sphere.ratio=0.5" in table


@pytest.mark.parametrize("overrides, message", [
    (["sweep.key=ppo.gamma", "sweep.values=[0.9]"], "sweep.key: 'ppo.gamma' is not one of"),
    (["sweep.key=sphere.ratio", "sweep.values=[]"], "sweep.values: a non-empty list"),
    (["sweep.key=ppo.clip_eps", "sweep.values=[0.1,-0.2]"], "sweep.values: ppo.clip_eps=-0.2"),
])
def test_bad_sweeps_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(*ONE_TASK, *overrides)
