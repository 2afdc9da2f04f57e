"""Where the trainer lived before it split into purejaxsphere/programs.py (the compiled task programs) and
purejaxsphere/driver.py (the task/chunk loop, `Trainer`, `make_train`); run directories, resume and checkpoints are
purejaxsphere/run.py's.

Kept only as re-exports for code outside the project that imports these names from here (DESIGN.md names
train.py as the trainer's home). The project imports from programs / driver.
"""

from purejaxsphere.driver import Trainer, make_train
from purejaxsphere.programs import TrainState, deterministic_action, make_rollout_fn, map_members

__all__ = ["Trainer", "TrainState", "deterministic_action", "make_rollout_fn", "make_train", "map_members"]
