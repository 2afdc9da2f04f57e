"""MetaWorld's Continual World tasks (CW10, v3, goal observable) in MJX: `envs.make("metaworld/hammer-v3")`.

- `make(name, episode_length=500, randomize_each_episode=False, seed=0, rand_vec=None, physics="mjx")`: the task
  (envs.core protocol) on MJX, or with physics="cpu" on C MuJoCo behind jax.pure_callback (envs/cpu.py).
  `randomize_each_episode=False` (default) matches the package's goal-observable constructors: object and goal
  positions are drawn once (from `seed`) and kept for every episode; True draws new ones at every reset.
- `task.cpu()`: the same task on C MuJoCo with the untouched model (gymnasium.Env).
- `reference(name, seed=None, rand_vec=None)`: the real `metaworld` 3.1.1 env (goal observable), the reference of
  the tests, run by mw-oracle in its own virtual environment (envs/metaworld/oracle.py; the project never imports
  `metaworld`); `expert_policy(name)`: the package's scripted expert, through the same oracle.
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


def reference(name: str, seed: int | None = None, rand_vec=None):
    """The real metaworld 3.1.1 env (goal observable; object and goal positions fixed per instance, or at
    `rand_vec`), behind mw-oracle's pipe: an `oracle.PackageEnv` (gymnasium-like, with the package's `state`)."""
    from envs.metaworld import oracle

    return oracle.shared().make(name, seed=seed, rand_vec=rand_vec)


class ExpertPolicy:
    """The package's scripted expert for a task (metaworld.policies, run by mw-oracle): obs -> float32 action."""

    def __init__(self, name: str):
        self.task = _short(name)

    def get_action(self, obs):
        from envs.metaworld import oracle

        return oracle.shared().expert(self.task, obs)


def expert_policy(name: str) -> ExpertPolicy:
    return ExpertPolicy(name)
