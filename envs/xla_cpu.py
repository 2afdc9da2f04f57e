"""The XLA:CPU workaround for MJX (MuJoCo issue 2957): the one place that decides when to set it.

XLA:CPU's fusion emitters make the MJX step of the contact-rich MetaWorld models many times slower, and its
compile longer (HumanoidBench's H1 step much less so); the figures are in docs/benchmarks.md, "MJX on CPU and
XLA_FLAGS".
`XLA_FLAGS=--xla_cpu_use_fusion_emitters=false` avoids that, but XLA reads XLA_FLAGS once, when jax initialises
its backends. So:

- `envs.make` and the CLI (`cli.configure_xla`) call `ensure_workaround` before building such a task on MJX;
- before jax's backends exist it appends the flag to XLA_FLAGS (harmless on a GPU: it only changes XLA:CPU);
- after, on a CPU backend, it warns once with the line to add (it is too late to set it);
- it never overrides a user's own `xla_cpu_use_fusion_emitters` setting, and is not applied to contact-free Brax
  tasks or to `physics="cpu"`, where the flag only slows the networks (README, "Notes on CPU").

Importing this module does not import jax (it only looks at `sys.modules`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable

SUITES = ("humanoidbench/", "metaworld/")  # MJX models that hit the regression
FLAG = "--xla_cpu_use_fusion_emitters=false"
_FLAG_NAME = "xla_cpu_use_fusion_emitters"
FIX_LINE = f'os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " {FLAG}"'
_warned = False


def needs_workaround(tasks: Iterable[str], physics: str) -> bool:
    """Whether MJX physics of a contact-rich suite runs (`physics` is the config's / `envs.make`'s argument)."""
    return physics == "mjx" and any(task.startswith(SUITES) for task in tasks)


def decide(tasks: Iterable[str], physics: str, xla_flags: str, backends_ready: bool, on_cpu: bool) -> str:
    """What to do: "none" (not needed, or the user chose a setting), "set" (append FLAG to XLA_FLAGS) or "warn"
    (too late to set it, and the backend is XLA:CPU). Pure: the caller reads the process state."""
    if not needs_workaround(tasks, physics) or _FLAG_NAME in xla_flags:
        return "none"
    if not backends_ready:
        return "set"
    return "warn" if on_cpu else "none"


def backends_initialized() -> bool:
    """Whether jax has created its backends (after which XLA_FLAGS is read), without importing or initialising jax."""
    xla_bridge = sys.modules.get("jax._src.xla_bridge")
    return xla_bridge is not None and xla_bridge.backends_are_initialized()


def warning_text(tasks: Iterable[str]) -> str:
    return (
        f"MJX task(s) {', '.join(sorted(set(tasks)))} on XLA:CPU without XLA_FLAGS={FLAG}: MJX steps and compiles "
        f"run much slower (MetaWorld's step 40-110x; MuJoCo issue 2957; docs/benchmarks.md). jax's backend already "
        f"exists, so it is too late to set it here. Build the task before any jax computation, or put this line at "
        f"the top of the script, before anything runs jax:\n    import os; {FIX_LINE}"
    )


def ensure_workaround(tasks: Iterable[str], physics: str) -> str:
    """Apply the rule above for these tasks in this process; returns `decide`'s answer."""
    global _warned
    tasks = list(tasks)
    ready = backends_initialized()
    on_cpu = ready and sys.modules["jax"].default_backend() == "cpu"
    action = decide(tasks, physics, os.environ.get("XLA_FLAGS", ""), ready, on_cpu)
    if action == "set":
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FLAG}".strip()
        logging.getLogger(__name__).info("set XLA_FLAGS=%s for MJX on %s", os.environ["XLA_FLAGS"], tasks)
    elif action == "warn" and not _warned:
        _warned = True
        warnings.warn(warning_text(tasks), RuntimeWarning, stacklevel=3)
    return action
