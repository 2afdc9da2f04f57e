"""Tasks for purejaxsphere: pure-JAX environments behind one registry (`envs.make`, `envs.list_tasks`)."""

from __future__ import annotations

from envs.registry import list_tasks, make, register

__all__ = ["list_tasks", "make", "register"]
