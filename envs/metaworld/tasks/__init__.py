"""The ten Continual World (CW10) tasks, one module each, in CW10 order."""

from envs.metaworld.tasks.faucet_close import FaucetClose
from envs.metaworld.tasks.hammer import Hammer
from envs.metaworld.tasks.handle_press_side import HandlePressSide
from envs.metaworld.tasks.peg_unplug_side import PegUnplugSide
from envs.metaworld.tasks.push import Push
from envs.metaworld.tasks.push_back import PushBack
from envs.metaworld.tasks.push_wall import PushWall
from envs.metaworld.tasks.shelf_place import ShelfPlace
from envs.metaworld.tasks.stick_pull import StickPull
from envs.metaworld.tasks.window_close import WindowClose

CW10 = (Hammer, PushWall, FaucetClose, PushBack, StickPull, HandlePressSide, Push, ShelfPlace, WindowClose,
        PegUnplugSide)
TASKS = {cls.short_name: cls for cls in CW10}
