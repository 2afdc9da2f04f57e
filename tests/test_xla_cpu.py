"""The XLA:CPU workaround rule (envs/xla_cpu.py): the decision table in-process, and in fresh subprocesses without
XLA_FLAGS (conftest sets it for this process) what a plain script gets from `envs.make` and the CLI's configure_xla.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envs import xla_cpu

REPO = Path(__file__).resolve().parent.parent
H1, MW, REACHER = "humanoidbench/h1_stand", "metaworld/push-v3", "brax/reacher"


@pytest.mark.parametrize(
    "tasks, physics, flags, ready, on_cpu, expected",
    [
        ([H1], "mjx", "", False, False, "set"),
        ([REACHER, MW], "mjx", "--xla_cpu_enable_fast_math=false", False, False, "set"),
        ([H1], "mjx", "", True, True, "warn"),
        ([H1], "mjx", "", True, False, "none"),  # a GPU backend: nothing to say
        ([H1], "cpu", "", False, False, "none"),  # C MuJoCo physics
        ([REACHER], "mjx", "", False, False, "none"),  # contact-free Brax: the flag would slow the networks
        ([H1], "mjx", "--xla_cpu_use_fusion_emitters=true", False, False, "none"),  # the user's own choice
        ([MW], "mjx", xla_cpu.FLAG, True, True, "none"),
    ],
)
def test_decide(tasks, physics, flags, ready, on_cpu, expected):
    assert xla_cpu.decide(tasks, physics, flags, ready, on_cpu) == expected


def run_script(code: str) -> dict:
    """Run `code` in a fresh interpreter from the repo root without XLA_FLAGS; it prints one JSON line last."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_make_sets_flag_before_jax_runs():
    result = run_script(f"""
        import json, os
        import envs
        env = envs.make("{H1}")
        import jax
        print(json.dumps({{"flags": os.environ.get("XLA_FLAGS"), "backend": jax.default_backend()}}))
    """)
    assert result == {"flags": xla_cpu.FLAG, "backend": "cpu"}


def test_make_train_sets_flag_before_jax_runs():
    """The README's Python API path: make_train builds its tasks before anything else runs jax."""
    result = run_script(f"""
        import json, os
        from purejaxsphere import load_config, make_train
        make_train(load_config("benchmark=smoke", "tasks=[{H1}]", "num_envs=2", "ppo.minibatch_size=16",
                               "network.hidden_sizes=[8]", "network.gate_hidden_sizes=[8]",
                               "network.critic_hidden_sizes=[8]"))
        print(json.dumps(os.environ.get("XLA_FLAGS")))
    """)
    assert result == xla_cpu.FLAG


def test_make_warns_once_when_jax_already_runs():
    result = run_script(f"""
        import json, os, warnings
        import jax
        jax.numpy.zeros(1).block_until_ready()  # the backend exists: XLA_FLAGS was read already
        import envs
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            envs.make("{H1}")
            envs.make("{MW}")
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        print(json.dumps({{"flags": os.environ.get("XLA_FLAGS"), "messages": messages,
                          "where": [w.filename for w in caught if issubclass(w.category, RuntimeWarning)]}}))
    """)
    assert result["flags"] is None  # not set behind the user's back where it cannot take effect
    assert len(result["messages"]) == 1, result["messages"]
    assert xla_cpu.FIX_LINE in result["messages"][0] and H1 in result["messages"][0]
    assert result["where"] == ["<string>"]  # points at the user's line, not at envs/


def test_fix_line_is_python_that_appends_the_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")  # restored after the test
    exec(xla_cpu.FIX_LINE, {"os": os})
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_enable_fast_math=false", xla_cpu.FLAG]


def test_configure_xla_uses_the_same_rule():
    result = run_script("""
        import json, os
        from purejaxsphere.cli import configure_xla
        from purejaxsphere.config import load_config
        configure_xla(load_config("benchmark=smoke"))
        smoke = os.environ.get("XLA_FLAGS")
        configure_xla(load_config("benchmark=humanoidbench_h1", "physics=cpu"))
        cpu = os.environ.get("XLA_FLAGS")
        configure_xla(load_config("benchmark=humanoidbench_h1"))
        print(json.dumps([smoke, cpu, os.environ.get("XLA_FLAGS")]))
    """)
    assert result == [None, None, xla_cpu.FLAG]
