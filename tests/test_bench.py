"""`purejaxsphere bench --quick` runs end to end and writes valid JSON (shape and sanity only: no speed assertions)."""

import json
import math

import pytest

from purejaxsphere.cli import main


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def positive_finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_rates_are_positive_finite(quick_result):
    rates = quick_result["rates"]
    for key in ("raw_env", "collection", "trainer", "brax_ppo", "mujoco_1thread"):
        assert positive_finite(rates[key]), (key, rates[key])
    assert rates["raw_env_wrapped"] is None  # --quick skips it (two more compiles)
    # The update phase is derived (chunk time per update - rollout time); at the quick shape it is a small
    # difference of two noisy times, and the payload says so when it is not positive.
    assert positive_finite(rates["update"]) or any(n.startswith("update:") for n in quick_result["notes"])
    for key in ("collection_over_raw", "trainer_over_raw", "trainer_over_brax_ppo", "raw_over_mujoco_1thread"):
        assert positive_finite(quick_result["ratios"][key]), key


def test_payload_keys_and_types(quick_result):
    assert quick_result["schema"] == "purejaxsphere.bench/1"
    assert quick_result["command"].startswith("purejaxsphere bench --quick")
    machine = quick_result["machine"]
    assert isinstance(machine["cpu_count"], int) and machine["cpu_count"] > 0
    assert isinstance(machine["versions"]["jax"], str)
    for when in ("start", "end"):
        load = quick_result["load_average"][when]
        assert len(load) == 3 and all(isinstance(x, float) and x >= 0 for x in load)
    setup = quick_result["setup"]
    assert setup["task"] == "humanoidbench/h1_stand" and setup["physics"] == "cpu"
    assert setup["num_envs"] == 4 and setup["seeds"] == 1
    for key in ("raw_env", "collection", "trainer", "brax_ppo"):
        assert positive_finite(quick_result["compile_seconds"][key]), key
    for name, m in quick_result["measurements"].items():
        assert m["calls"] >= 1 and positive_finite(m["steps_per_s"]), name
        assert positive_finite(m["best_seconds_per_call"]) and m["steps_per_call"] > 0, name
    assert isinstance(quick_result["notes"], list)
    for key in ("collection_over_raw", "trainer_over_raw", "trainer_over_brax_ppo"):
        assert positive_finite(quick_result["median_ratios"][key]), key


def test_memory_report(quick_result):
    memory = quick_result["memory"]
    chunk = memory["trainer_chunk_bytes"]  # XLA:CPU reports its plan
    assert chunk["total"] == chunk["argument"] + chunk["output"] + chunk["temp"] - chunk["alias"]
    assert chunk["argument"] > 0 and chunk["total"] >= chunk["argument"]
    assert memory["peak_rss_bytes"] >= chunk["argument"]  # on CPU the carry lives in this process's memory
