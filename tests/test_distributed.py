"""Several devices: 4 forced CPU host devices give the metrics of one device (seed axis and env axis sharding), and
so do two processes joined by jax.distributed (multi-host on one machine)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from purejaxsphere.cli import main
from purejaxsphere.distributed import process_arguments, shard_axis
from purejaxsphere.logging import read_metrics

REPO = Path(__file__).resolve().parent.parent
ONE_TASK = [
    *TINY, "tasks=[brax/reacher]", "total_timesteps=128", "progress=false", "wandb.mode=disabled",
    "checkpoint.enabled=false",
]
COMPARED = ("eval_return", "train_return", "policy_loss", "value_loss", "approx_kl", "learning_rate_end")

# Runs n configurations on 4 forced host devices in a fresh process (the flag must precede jax).
# Arguments: n, n seeds settings, n run directories, the shared overrides.
FOUR_DEVICE_SCRIPT = """
import sys, jax
from purejaxsphere.cli import main
assert len(jax.devices()) == 4, jax.devices()
n = int(sys.argv[1])
for seeds, run_dir in zip(sys.argv[2:2 + n], sys.argv[2 + n:2 + 2 * n]):
    assert main(["train", *sys.argv[2 + 2 * n:], seeds, f"run_dir={run_dir}"]) == 0
"""
# Seed axis sharded (4 seeds); env axis sharded with 2 seeds (vmapped) and with 1 seed (computed without vmap).
FOUR_DEVICE_CASES = {"seeds=4": "seed_axis", "seeds=2": "env_axis", "seeds=1": "env_axis_one_seed"}


def test_shard_axis_rule():
    assert shard_axis(1, 4, 8) is None
    assert shard_axis(4, 4, 8) == "seed"
    assert shard_axis(4, 2, 8) == "env"
    assert shard_axis(4, 1, 4) == "env"
    assert shard_axis(4, 3, 6) is None


def test_process_arguments_from_environment():
    assert process_arguments({}) == {}
    assert process_arguments({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}) == {"num_processes": 2, "process_id": 1}
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='x' is not an integer"):
        process_arguments({"JAX_PROCESS_ID": "x"})
    with pytest.raises(ValueError, match=r"JAX_PROCESS_ID=2 is not in \[0, JAX_NUM_PROCESSES=2\)"):
        process_arguments({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"})


@pytest.fixture(scope="module")
def one_device_runs(tmp_path_factory):
    """The reference runs on one device, one per seeds setting, made on first use."""
    runs = {}

    def run(seeds: str) -> Path:
        if seeds not in runs:
            runs[seeds] = tmp_path_factory.mktemp("one") / "run"
            assert main(["train", *ONE_TASK, seeds, f"run_dir={runs[seeds]}"]) == 0
        return runs[seeds]

    return run


def assert_same_run(one: Path, many: Path, label: str) -> None:
    rows_one, rows_many = read_metrics(one), read_metrics(many)
    assert len(rows_one) == len(rows_many) > 0
    for a, b in zip(rows_one, rows_many):
        assert (a["seed"], a["chunk"]) == (b["seed"], b["chunk"])
        for key in COMPARED:
            if a[key] is None or b[key] is None:  # train_return is None in a chunk where no episode ended
                assert a[key] is b[key] is None, (label, key, a[key], b[key])
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=1e-6, err_msg=f"{label} {key}")
    summary_one = json.loads((one / "summary.json").read_text())
    summary_many = json.loads((many / "summary.json").read_text())
    for key in ("average_return", "final_policy_average_return"):
        np.testing.assert_allclose(summary_one[key], summary_many[key], rtol=2e-4)


@pytest.mark.parametrize("seeds", list(FOUR_DEVICE_CASES), ids=list(FOUR_DEVICE_CASES.values()))
def test_four_devices_match_one(seeds, one_device_runs, four_device_runs):
    assert_same_run(one_device_runs(seeds), four_device_runs[seeds], seeds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_hosts_match_one(tmp_path, one_device_runs):
    """Two processes, one CPU device each, joined through JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID and `distributed=true`: the seed axis is split across the processes (cross-process collectives
    over gloo), process 0 writes the run directory, and the metrics equal a one-process run's."""
    run_dir = tmp_path / "run"
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-c", "import sys; from purejaxsphere.cli import main; sys.exit(main(sys.argv[1:]))",
               "train", *ONE_TASK, "seeds=2", "distributed=true", f"run_dir={run_dir}"]
    hosts = []
    for process_id in range(2):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(process_id))
        env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f)
        hosts.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = []
    for host in hosts:
        try:
            outputs.append(host.communicate(timeout=1200)[0])
        finally:
            host.kill()
    for process_id, (host, output) in enumerate(zip(hosts, outputs)):
        assert host.returncode == 0, f"process {process_id}:\n{output[-3000:]}"
        assert "purejaxsphere: done: 1 task x 2 seeds" in output
    # Process 0 writes the run directory; process 1 its own copy below it, from the same gathered metrics.
    assert_same_run(run_dir, run_dir / ".process_1", "process 1's copy")
    assert_same_run(one_device_runs("seeds=2"), run_dir, "two hosts")


@pytest.fixture(scope="module")
def four_device_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("four")
    dirs = {seeds: root / name for seeds, name in FOUR_DEVICE_CASES.items()}
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    out = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICE_SCRIPT, str(len(dirs)), *dirs.keys(), *map(str, dirs.values()), *ONE_TASK],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "running on one device" not in out.stderr
    return dirs
