"""Name -> constructor registry behind `envs.make`. Suites register themselves under a prefix (`brax/...`)."""

from __future__ import annotations

import difflib
from typing import Any, Callable

from envs.brax_tasks import BRAX_TASKS, BraxTask
from envs.core import Env

_REGISTRY: dict[str, Callable[..., Env]] = {}


def register(name: str, constructor: Callable[..., Env]) -> None:
    """Make `envs.make(name, **kwargs)` call `constructor(**kwargs)`."""
    _REGISTRY[name] = constructor


def list_tasks() -> list[str]:
    """All registered task names, sorted."""
    return sorted(_REGISTRY)


def make(name: str, **kwargs: Any) -> Env:
    """Build a task by name, e.g. `envs.make("brax/reacher", episode_length=200)`."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list_tasks(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(list_tasks())}"
        raise ValueError(f"unknown task {name!r}{hint}")
    return _REGISTRY[name](**kwargs)


def _brax_constructor(short: str) -> Callable[..., Env]:
    return lambda **kwargs: BraxTask(short, **kwargs)


for _short in BRAX_TASKS:
    register(f"brax/{_short}", _brax_constructor(_short))

# HumanoidBench H1 tasks (models are built lazily, in the task constructor).
from envs.humanoidbench import register_humanoidbench  # noqa: E402

register_humanoidbench()


def _metaworld_constructor(short: str) -> Callable[..., Env]:
    def build(**kwargs: Any) -> Env:
        from envs.metaworld import make as make_metaworld  # imported lazily: builds MuJoCo models

        return make_metaworld(short, **kwargs)

    return build


for _short in ("hammer-v3", "push-wall-v3", "faucet-close-v3", "push-back-v3", "stick-pull-v3",
               "handle-press-side-v3", "push-v3", "shelf-place-v3", "window-close-v3", "peg-unplug-side-v3"):
    register(f"metaworld/{_short}", _metaworld_constructor(_short))
