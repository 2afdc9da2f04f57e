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
