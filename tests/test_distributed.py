"""Several devices: 4 forced CPU host devices give the metrics of one device (seed axis and env axis sharding)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from purejaxsphere.cli import main
from purejaxsphere.distributed import shard_axis
from purejaxsphere.logging import read_metrics
from test_train import TINY

REPO = Path(__file__).resolve().parent.parent
ONE_TASK = [
    *TINY, "tasks=[brax/reacher]", "total_timesteps=128", "progress=false", "wandb.mode=disabled",
    "checkpoint.enabled=false",
]
COMPARED = ("eval_return", "train_return", "policy_loss", "value_loss", "approx_kl", "learning_rate_end")

# Runs the same two configurations on 4 forced host devices in a fresh process (the flag must precede jax).
FOUR_DEVICE_SCRIPT = """
import sys, jax
from purejaxsphere.cli import main
assert len(jax.devices()) == 4, jax.devices()
for seeds, run_dir in zip(sys.argv[1:3], sys.argv[3:5]):
    assert main(["train", *sys.argv[5:], seeds, f"run_dir={run_dir}"]) == 0
"""


def test_shard_axis_rule():
    assert shard_axis(1, 4, 8) is None
    assert shard_axis(4, 4, 8) == "seed"
    assert shard_axis(4, 2, 8) == "env"
    assert shard_axis(4, 3, 6) is None


@pytest.mark.parametrize("seeds", ["seeds=4", "seeds=2"], ids=["seed_axis", "env_axis"])
def test_four_devices_match_one(seeds, tmp_path_factory, four_device_runs):
    one = tmp_path_factory.mktemp("one") / "run"
    assert main(["train", *ONE_TASK, seeds, f"run_dir={one}"]) == 0
    many = four_device_runs[seeds]
    rows_one, rows_many = read_metrics(one), read_metrics(many)
    assert len(rows_one) == len(rows_many) > 0
    for a, b in zip(rows_one, rows_many):
        assert (a["seed"], a["chunk"]) == (b["seed"], b["chunk"])
        for key in COMPARED:
            if a[key] is None or b[key] is None:  # train_return is None in a chunk where no episode ended
                assert a[key] is b[key] is None, (seeds, key, a[key], b[key])
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=1e-6, err_msg=f"{seeds} {key}")
    summary_one = json.loads((one / "summary.json").read_text())
    summary_many = json.loads((many / "summary.json").read_text())
    np.testing.assert_allclose(summary_one["final_average_return"], summary_many["final_average_return"], rtol=2e-4)


@pytest.fixture(scope="module")
def four_device_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("four")
    dirs = {"seeds=4": root / "seed_axis", "seeds=2": root / "env_axis"}
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    out = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICE_SCRIPT, *dirs.keys(), *map(str, dirs.values()), *ONE_TASK],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "running on one device" not in out.stderr
    return dirs
