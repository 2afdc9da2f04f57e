"""Name -> constructor registry behind `envs.make`. Suites register themselves under a prefix (`brax/...`).

Importing this module does not import jax: `TASK_NAMES` is built from the suites' jax-free name tuples
(`envs.brax_tasks.BRAX_TASKS`, `envs.humanoidbench.TASK_NAMES`, `envs.metaworld.CW10_NAMES`: each task is named once,
in its suite) and `SUITE_PHYSICS` is a static table, so config validation can check task names and physics backends
in a fraction of a second. A task's constructor imports its suite on the first `make`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from envs import xla_cpu
from envs.brax_tasks import BRAX_TASKS
from envs.humanoidbench import TASK_NAMES as HUMANOIDBENCH_TASKS
from envs.metaworld import CW10_NAMES

if TYPE_CHECKING:
    from envs.core import Env

# Every built-in task, from the suites' own jax-free name tuples.
SUITE_TASKS: dict[str, tuple[str, ...]] = {
    "brax": BRAX_TASKS,
    "humanoidbench": HUMANOIDBENCH_TASKS,
    "metaworld": CW10_NAMES,
}
TASK_NAMES: tuple[str, ...] = tuple(f"{suite}/{short}" for suite, names in SUITE_TASKS.items() for short in names)
# The physics backends (config `physics`) each suite runs on. "warp" (MJX's Warp implementation) is where the suite
# would run once the stack has it (mujoco-mjx >= 3.3.5, CUDA): config validation and `make` check that stack first.
SUITE_PHYSICS: dict[str, tuple[str, ...]] = {
    "brax": ("mjx",),
    "humanoidbench": ("mjx", "cpu", "warp"),
    "metaworld": ("mjx", "cpu", "warp"),
}

# Each suite's constructor `(short name, **kwargs) -> Env` as (module, attribute), imported on the first build.
_SUITE_CONSTRUCTORS: dict[str, tuple[str, str]] = {
    "brax": ("envs.brax_tasks", "BraxTask"),
    "humanoidbench": ("envs.humanoidbench", "make_task"),
    "metaworld": ("envs.metaworld", "make"),
}

_REGISTRY: dict[str, Callable[..., Env]] = {}
_BUILTINS_REGISTERED = False


def register(name: str, constructor: Callable[..., Env]) -> None:
    """Make `envs.make(name, **kwargs)` call `constructor(**kwargs)`."""
    _register_builtins()
    _REGISTRY[name] = constructor


def list_tasks() -> list[str]:
    """All task names, sorted: the built-in ones and any registered at run time (cheap: imports no suite)."""
    return sorted(set(TASK_NAMES) | set(_REGISTRY))


def make(name: str, **kwargs: Any) -> Env:
    """Build a task by name, e.g. `envs.make("brax/reacher", episode_length=200)`. An MJX HumanoidBench or MetaWorld
    task sets the XLA:CPU workaround first, or warns once where jax already runs (envs/xla_cpu.py)."""
    _register_builtins()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list_tasks(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(list_tasks())}"
        raise ValueError(f"unknown task {name!r}{hint}")
    if kwargs.get("physics") == "warp":  # the CUDA device, which config validation does not look for (jax-free)
        from envs.warp import cuda_devices, warp_stack_problem

        problem = warp_stack_problem(cuda_devices())
        if problem is not None:
            raise ValueError(problem)
    xla_cpu.ensure_workaround([name], kwargs.get("physics", "mjx"))  # before the constructor starts jax's backend
    return _REGISTRY[name](**kwargs)


def _register_builtins() -> None:
    """Register the suites' constructors for `TASK_NAMES`, once (the constructors import jax and the suites)."""
    global _BUILTINS_REGISTERED
    if _BUILTINS_REGISTERED:
        return
    _BUILTINS_REGISTERED = True  # first: register() calls this
    for suite, names in SUITE_TASKS.items():
        for short in names:
            register(f"{suite}/{short}", _constructor(suite, short))


def _constructor(suite: str, short: str) -> Callable[..., Env]:
    """`envs.make`'s constructor of one built-in task; it imports the suite on the first build."""

    def build(**kwargs: Any) -> Env:
        module, attribute = _SUITE_CONSTRUCTORS[suite]
        return getattr(importlib.import_module(module), attribute)(short, **kwargs)

    return build
