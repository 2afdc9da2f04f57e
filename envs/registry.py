"""Name -> constructor registry behind `envs.make`. Suites register themselves under a prefix (`brax/...`).

Importing this module does not import jax: `TASK_NAMES` and `SUITE_PHYSICS` are static tables, so config validation
can check task names and physics backends in a fraction of a second. The suites' constructors are registered on the
first `make` (or `register`), which asserts that they register exactly `TASK_NAMES`.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Callable

from envs import xla_cpu

if TYPE_CHECKING:
    from envs.core import Env

# Every built-in task. Keep in step with the suites' own lists (checked when the suites register).
TASK_NAMES: tuple[str, ...] = (
    "brax/ant", "brax/halfcheetah", "brax/hopper", "brax/humanoid", "brax/humanoidstandup",
    "brax/inverted_pendulum", "brax/inverted_double_pendulum", "brax/pusher", "brax/reacher", "brax/walker2d",
    "humanoidbench/h1_stand", "humanoidbench/h1_walk", "humanoidbench/h1_pole", "humanoidbench/h1_slide",
    "humanoidbench/h1_run",
    "metaworld/hammer-v3", "metaworld/push-wall-v3", "metaworld/faucet-close-v3", "metaworld/push-back-v3",
    "metaworld/stick-pull-v3", "metaworld/handle-press-side-v3", "metaworld/push-v3", "metaworld/shelf-place-v3",
    "metaworld/window-close-v3", "metaworld/peg-unplug-side-v3",
)
# The physics backends (config `physics`) each suite runs on. "warp" (MJX's Warp implementation) is where the suite
# would run once the stack has it (mujoco-mjx >= 3.3.5, CUDA): config validation and `make` check that stack first.
SUITE_PHYSICS: dict[str, tuple[str, ...]] = {
    "brax": ("mjx",),
    "humanoidbench": ("mjx", "cpu", "warp"),
    "metaworld": ("mjx", "cpu", "warp"),
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
    """Register the suites' constructors once (Brax imports jax here) and check them against `TASK_NAMES`."""
    global _BUILTINS_REGISTERED
    if _BUILTINS_REGISTERED:
        return
    _BUILTINS_REGISTERED = True  # first: the suites call register(), which calls this
    before = set(_REGISTRY)
    try:
        from envs.brax_tasks import BRAX_TASKS
        from envs.humanoidbench import register_humanoidbench
        from envs.metaworld import CW10_NAMES

        for short in BRAX_TASKS:
            register(f"brax/{short}", _brax_constructor(short))
        register_humanoidbench()
        for short in CW10_NAMES:
            register(f"metaworld/{short}", _metaworld_constructor(short))
    except BaseException:
        _BUILTINS_REGISTERED = False
        raise
    registered, static = set(_REGISTRY) - before, set(TASK_NAMES)
    assert registered == static, (
        f"envs.registry.TASK_NAMES is out of date: suites register {sorted(registered - static)} not in it, and "
        f"it lists {sorted(static - registered)} that no suite registers"
    )


def _brax_constructor(short: str) -> Callable[..., Env]:
    def build(**kwargs: Any) -> Env:
        from envs.brax_tasks import BraxTask

        return BraxTask(short, **kwargs)

    return build


def _metaworld_constructor(short: str) -> Callable[..., Env]:
    def build(**kwargs: Any) -> Env:
        from envs.metaworld import make as make_metaworld  # imported lazily: builds MuJoCo models

        return make_metaworld(short, **kwargs)

    return build
