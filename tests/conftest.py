"""Test session setup, before jax is imported anywhere in the session (subprocesses inherit the environment):
- MJX on CPU needs the XLA:CPU fusion-emitter workaround (MuJoCo issue 2957);
- W&B off unless a test turns it on;
- one persistent compilation cache per test run (shared by pytest-xdist workers), so the many tiny runs that
  compile the same programs (trainer, checkpoint/resume, report, eval tests) compile each once.
"""

import os
import tempfile
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("WANDB_MODE", "disabled")
# pytest-xdist workers of one run share the cache (a program one worker compiled is a cache hit for the other).
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"purejaxsphere-test-xla-cache-{_RUN_ID}") if _RUN_ID
    else tempfile.mkdtemp(prefix="purejaxsphere-test-xla-cache-"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
warnings.filterwarnings("ignore", message=".*Brax System, piplines and environments.*")

# The tiny trainer configuration the tests share (a few seconds per task on CPU); tests add tasks, seeds, budget.
TINY = [
    "num_envs=4",
    "ppo.n_steps=8",
    "ppo.minibatch_size=16",
    "ppo.update_epochs=2",
    "network.hidden_sizes=[16,16]",
    "network.gate_hidden_sizes=[16]",
    "network.critic_hidden_sizes=[16]",
    "network.n_experts=3",
    "eval.interval=64",  # 2 updates per chunk
    "eval.episodes=2",
    "episode_length=20",
    "diagnostics.enabled=false",  # tests that check diagnostics turn them on (they add compile time to every chunk)
]


def tiny(*overrides):
    """`TINY` with `overrides` as a Config."""
    from purejaxsphere import load_config  # imported here: jax must see the environment set above first

    return load_config(*TINY, *overrides)


def leaves_close(a, b, **kwargs):
    """Every leaf of pytree `a` is allclose to the matching leaf of `b`."""
    import jax
    import numpy as np

    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kwargs)
