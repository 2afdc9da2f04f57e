"""Test session setup: MJX on CPU needs the XLA:CPU fusion-emitter workaround (MuJoCo issue 2957), set before jax
is imported anywhere in the session."""

import os
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore", message=".*Brax System, piplines and environments.*")
