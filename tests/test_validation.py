"""Bad configurations fail before anything compiles: exit code 2, one stderr line naming the field and what is allowed.

Timing. One subprocess (`python -m tests.test_validation`, the driver below) imports the CLI once and runs every case
through `main()`, timing each; the limit (2 s) applies to import + validation of each case. The driver blocks `import
jax` (`sys.modules["jax"] = None`), so validation that reaches for jax, or a bad config that slips through to the
trainer, fails the case instead of compiling. A few cases also run as true subprocesses: there the CPU time of the
child (interpreter start included) must stay under 2 s; its wall time gets a looser bound, because this machine
shares 2 cores with other jobs and the wall time of a 1.5 s process varies with their load, not with our code.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 2.0
PREFIX = "purejaxsphere: config error: "


class Case(NamedTuple):
    name: str
    overrides: list[str]
    field: str  # the message starts with "<field>:"
    expected: list[str]  # substrings of the message: allowed values, suggestions


CASES = [
    Case("unknown_task", ["tasks=[brax/reachr]"], "tasks[0]", ["did you mean brax/reacher", "brax/hopper"]),
    Case("unknown_task_second", ["tasks=[brax/reacher,metaworld/hamer-v3]"], "tasks[1]",
         ["did you mean metaworld/hammer-v3"]),
    Case("empty_tasks", ["tasks=[]"], "tasks", ["empty"]),
    Case("unknown_algo", ["algo=moe_topk_spere"], "algo",
         ["did you mean moe_topk_sphere",
          "is not one of " + ", ".join(sorted(p.stem for p in (ROOT / "configs" / "algo").glob("*.yaml")))]),
    Case("unknown_benchmark", ["benchmark=metaworld_cw1"], "benchmark", ["did you mean metaworld_cw10", "smoke"]),
    Case("unknown_key", ["ppo.lerning_rate=1"], "ppo.lerning_rate", ["did you mean ppo.learning_rate", "keys of ppo"]),
    Case("key_without_section", ["lerning_rate=1"], "lerning_rate", ["did you mean ppo.learning_rate"]),
    Case("appended_key", ["+foo=1"], "foo", ["unknown key", "top-level keys: benchmark"]),
    Case("top_k_above_n_experts", ["network.n_experts=2", "network.top_k=3"], "network.top_k",
         ["1..network.n_experts (2)", "got 3"]),
    Case("zero_envs", ["num_envs=0"], "num_envs", ["must be positive"]),
    Case("zero_hidden_size", ["network.hidden_sizes=[64,0]"], "network.hidden_sizes", ["positive sizes"]),
    Case("minibatch_not_dividing", ["num_envs=10", "ppo.n_steps=10", "ppo.minibatch_size=64"], "ppo.minibatch_size",
         ["does not divide", "= 100"]),
    Case("negative_ratio", ["sphere.ratio=-0.1"], "sphere.ratio", [">= 0"]),
    Case("gamma_above_one", ["ppo.gamma=1.5"], "ppo.gamma", ["[0, 1]"]),
    Case("type_int", ["num_envs=abc"], "num_envs", ["expected int, got 'abc'"]),
    Case("type_bool", ["sphere.pcgrad=maybe"], "sphere.pcgrad", ["expected bool"]),
    Case("type_list", ["tasks=brax/reacher"], "tasks", ["expected list[str]"]),
    Case("choice_typo", ["sphere.mode=los"], "sphere.mode", ["off, loss, grad", "did you mean loss"]),
    Case("init_choice", ["network.init=orthogonal"], "network.init", ["lecun, he"]),
    Case("physics_choice", ["physics=gpu"], "physics", ["mjx, cpu, warp"]),
    # This machine (the pinned mujoco-mjx 3.3.0, no mujoco-warp, no CUDA): refused at config time, saying why.
    Case("warp_unavailable", ["physics=warp", "tasks=[humanoidbench/h1_stand,metaworld/hammer-v3]"], "physics",
         ["needs mujoco-mjx >= 3.3.5 with mujoco-warp and a CUDA device",
          f"installed: mujoco-mjx {metadata.version('mujoco-mjx')}, mujoco-warp none"]),
    Case("warp_physics_brax", ["physics=warp"], "physics", ["brax/reacher (tasks[0])", "runs on mjx"]),
    Case("cpu_physics_brax", ["physics=cpu"], "physics", ["brax/reacher (tasks[0])", "runs on mjx"]),
    Case("cpu_physics_mixed_suites", ["physics=cpu", "tasks=[humanoidbench/h1_stand,brax/hopper]"], "physics",
         ["brax/hopper (tasks[1])"]),
    Case("seeds_zero", ["seeds=0"], "seeds", ["positive int n"]),
    Case("seeds_duplicate", ["seeds=[1,1]"], "seeds", ["duplicates"]),
    Case("seeds_negative", ["seeds=[3,-1]"], "seeds", ["ints in 0..4294967295"]),
    Case("seeds_bool", ["seeds=true"], "seeds", ["got True"]),
    Case("seeds_string", ["seeds=abc"], "seeds", ["got 'abc'"]),
    Case("resume_missing", ["resume=/nonexistent/run"], "resume",
         ["/nonexistent/run is not a run directory (no config.yaml)"]),
]
SUBPROCESS_CASES = ["unknown_task", "unknown_algo", "unknown_key", "cpu_physics_brax", "warp_unavailable"]
VALID = Case("valid", ["seeds=1"], "", [])  # passes validation, so the driver sees the trainer's `import jax` fail


def run_cases(cases: list[Case]) -> dict[str, Any]:
    """The driver: import the CLI, run each case through main() with jax blocked; time and capture each."""
    assert "jax" not in sys.modules
    sys.modules["jax"] = None  # type: ignore[assignment]  # any `import jax` now raises ImportError
    wall, cpu = time.perf_counter(), time.process_time()
    from purejaxsphere.cli import main

    out: dict[str, Any] = {"import_wall_s": time.perf_counter() - wall, "import_cpu_s": time.process_time() - cpu}
    for case in cases:
        stderr, stdout = io.StringIO(), io.StringIO()
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                code: Any = main(["train", *case.overrides])
            except BaseException as error:  # recorded and asserted on by the test
                code = f"{type(error).__name__}: {error}"
        out[case.name] = {"code": code, "stderr": stderr.getvalue(), "wall_s": time.perf_counter() - wall,
                          "cpu_s": time.process_time() - cpu}
    return out


@pytest.fixture(scope="module")
def driven() -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "tests.test_validation"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def check_message(case: Case, stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{PREFIX}{case.field}: "), lines[0]
    for text in case.expected:
        assert text in lines[0], (text, lines[0])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_config_exits_2_with_one_line_in_time(driven, case):
    result = driven[case.name]
    assert result["code"] == 2, result
    check_message(case, result["stderr"])
    assert driven["import_wall_s"] + result["wall_s"] < LIMIT_S, (driven["import_wall_s"], result)
    assert driven["import_cpu_s"] + result["cpu_s"] < LIMIT_S, (driven["import_cpu_s"], result)


def test_valid_config_passes_validation(driven):
    """The control: a good config gets past validation and on to the trainer (whose `import jax` is blocked)."""
    assert "ImportError" in str(driven[VALID.name]["code"]) or "ModuleNotFoundError" in str(driven[VALID.name]["code"])


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_subprocess(name):
    case = next(case for case in CASES if case.name == name)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "purejaxsphere.cli", "train", *case.overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode == 2, proc.stderr
    check_message(case, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert cpu < LIMIT_S, cpu
    assert wall < 2 * LIMIT_S, wall


def test_traceback_flag_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "purejaxsphere.cli", "--traceback", "train", "num_envs=0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError: num_envs" in proc.stderr


@pytest.mark.parametrize("mjx, warp, device, ok", [
    ("3.3.5", "3.3.5", (True, "jax devices: cuda"), True),
    ("3.10.0", "3.10.0", (True, "jax devices: gpu"), True),  # numeric, not string, comparison of versions
    ("3.3.5rc1", "0.1", (True, "NVIDIA driver: /dev/nvidiactl"), True),
    ("3.3.4", "3.3.4", (True, "jax devices: cuda"), False),
    ("3.3.0", None, (True, "jax devices: cuda"), False),
    ("3.3.5", None, (True, "jax devices: cuda"), False),
    ("3.3.5", "3.3.5", (False, "jax devices: cpu"), False),
    (None, None, (False, "jax devices: cpu"), False),
])
def test_warp_problem_names_what_is_missing(mjx, warp, device, ok):
    from envs.warp import warp_problem

    problem = warp_problem(mjx, warp, device)
    assert (problem is None) == ok, problem
    if not ok:
        assert problem.startswith("physics: 'warp' needs mujoco-mjx >= 3.3.5") and "\n" not in problem
        assert f"mujoco-mjx {mjx or 'none'}, mujoco-warp {warp or 'none'}; {device[1]}" in problem


def test_warp_tasks_check_the_cuda_device_when_built():
    """Config validation looks only at versions and the driver's files; building a task looks at jax's devices."""
    import jax

    import envs

    platforms = ", ".join(sorted({d.platform for d in jax.devices()}))
    with pytest.raises(ValueError, match=f"physics: 'warp' needs .*; jax devices: {platforms}$"):
        envs.make("metaworld/hammer-v3", physics="warp")


def test_registry_names_are_what_the_suites_build(monkeypatch):
    """TASK_NAMES (jax-free, used by validation) comes from the suites' own name tuples: the built-ins register
    exactly those, and each suite knows every one of its names (its task classes, specs, Brax's own registry)."""
    from brax import envs as brax_envs

    from envs import registry
    from envs.humanoidbench import get_spec
    from envs.metaworld.tasks import TASKS

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_BUILTINS_REGISTERED", False)
    registry._register_builtins()
    assert registry.list_tasks() == sorted(registry.TASK_NAMES) == sorted(registry._REGISTRY)
    suites = {suite: [n.split("/", 1)[1] for n in registry.TASK_NAMES if n.startswith(f"{suite}/")]
              for suite in registry.SUITE_PHYSICS}
    assert set(suites["metaworld"]) == set(TASKS) and len(suites["metaworld"]) == 10
    assert [get_spec(short).name for short in suites["humanoidbench"]] == suites["humanoidbench"]
    assert set(suites["brax"]) <= set(brax_envs._envs) and len(suites["brax"]) == 10


if __name__ == "__main__":
    print(json.dumps(run_cases([*CASES, VALID])))
