"""MetaWorld's Continual World tasks (CW10, v3, goal observable) in MJX: `envs.make("metaworld/hammer-v3")`.

- `make(name, episode_length=500, randomize_each_episode=False, seed=0, rand_vec=None, physics="mjx")`: the task
  (envs.core protocol) on MJX, or with physics="cpu" on C MuJoCo behind jax.pure_callback (envs/cpu.py).
  `randomize_each_episode=False` (default) matches the package's goal-observable constructors: object and goal
  positions are drawn once (from `seed`) and kept for every episode; True draws new ones at every reset.
- `task.cpu()`: the same task on C MuJoCo with the untouched model (gymnasium.Env).
- `reference(name, seed=None)`: the real `metaworld` environment (goal observable), the reference of the tests.
- `task.compat_record`: what the MJX model changes, as `envs.mjx_compat.Change`s (see model.py).
See docs/metaworld.md.
"""

from __future__ import annotations

CW10_NAMES = ("hammer-v3", "push-wall-v3", "faucet-close-v3", "push-back-v3", "stick-pull-v3",
              "handle-press-side-v3", "push-v3", "shelf-place-v3", "window-close-v3", "peg-unplug-side-v3")


def _short(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("metaworld/") else name


def make(name: str, **kwargs):
    from envs.metaworld.tasks import TASKS

    short = _short(name)
    if short not in TASKS:
        raise ValueError(f"unknown MetaWorld task {name!r}; known: {', '.join(CW10_NAMES)}")
    return TASKS[short](**kwargs)


def reference(name: str, seed: int | None = None):
    """The real metaworld 3.1.1 env (goal observable; object and goal positions fixed per instance)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{_short(name)}-goal-observable"](seed=seed)


def expert_policy(name: str):
    """The package's scripted expert for a task (metaworld.policies), obs -> action in numpy."""
    import metaworld.policies as policies

    cls_name = "Sawyer" + "".join(part.capitalize() for part in _short(name).split("-")) + "Policy"
    return getattr(policies, cls_name)()
