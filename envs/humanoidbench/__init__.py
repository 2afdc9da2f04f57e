"""HumanoidBench's H1 locomotion tasks (h1_stand, h1_walk, h1_pole, h1_slide, h1_run), ported to JAX.

`envs.make("humanoidbench/h1_walk", physics="mjx" | "cpu", ...)`; see `h1.H1Task` for the keyword arguments and
docs/humanoidbench.md for the port's choices. Importing this package is cheap: models are built in the constructor.
"""

from __future__ import annotations

from typing import Any

TASK_NAMES = ("h1_stand", "h1_walk", "h1_pole", "h1_slide", "h1_run")


def get_spec(short: str):
    import importlib

    if short not in TASK_NAMES:
        raise ValueError(f"unknown HumanoidBench task {short!r}; known: {', '.join(TASK_NAMES)}")
    return importlib.import_module(f"envs.humanoidbench.{short}").SPEC


def make_task(short: str, **kwargs: Any):
    from envs.humanoidbench.h1 import H1Task

    return H1Task(get_spec(short), **kwargs)

