"""purejaxsphere: pure-JAX continual RL with Top-K Mixture-of-Experts PPO and the SPHERE regularizer."""

from typing import Any

from purejaxsphere.config import Config, load_config

__all__ = ["Config", "load_config", "make_train"]


def __getattr__(name: str) -> Any:
    # make_train imports jax; importing it lazily lets the CLI set XLA flags (which depend on the config) first.
    if name == "make_train":
        from purejaxsphere.driver import make_train

        return make_train
    raise AttributeError(name)
