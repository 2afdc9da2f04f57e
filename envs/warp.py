"""Whether MJX's Warp implementation (`physics=warp`) can run in this process, and if not, why, in one line.

MJX runs on MuJoCo Warp through `mjx.put_model(..., impl="warp")` from mujoco-mjx 3.3.5 on (MuJoCo 3.5 made it
official), with the mujoco-warp package, on a CUDA device. mujoco-mjx 3.3.0, the project's pin, has no `impl`
argument (`inspect.signature(mujoco.mjx.put_model)`: `(m, device=None, _full_compat=False)`), so on this stack
`physics=warp` is refused at config time (why the stack stays there: docs/install.md, "The stack"). Importing this
module imports neither jax nor mujoco: config validation calls it.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

# MJX's Warp implementation needs this mujoco-mjx and the mujoco-warp package; it runs on CUDA only.
WARP_MIN_MJX = (3, 3, 5)
# Files an NVIDIA driver puts in place (also inside containers given a GPU): a CUDA device's cheap, jax-free sign.
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")
# What the suites say when the stack check passes: their MJX-Warp model loading is not written yet.
WARP_NOT_BUILT = (" (the stack supports physics='warp', but this suite's MJX-Warp backend is not built yet: "
                  "models, contact sensors and parity tests against C MuJoCo)")


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (importlib.metadata: imports nothing), or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The numeric release at the start of a version string: "3.3.5" -> (3, 3, 5), "3.10.0rc1" -> (3, 10, 0)."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def warp_problem(mjx_version: str | None, warp_version: str | None, device: tuple[bool, str]) -> str | None:
    """Why `physics=warp` cannot run, in one line, or None when it can.

    mjx_version / warp_version: the installed mujoco-mjx / mujoco-warp (None: not installed). device: (whether a
    CUDA device was found, what was seen), e.g. (False, "no NVIDIA driver"), (False, "jax devices: cpu"); the
    caller decides how far it can look (`nvidia_driver`, `cuda_devices`)."""
    mjx_ok = mjx_version is not None and release(mjx_version) >= WARP_MIN_MJX
    found, seen = device
    if mjx_ok and warp_version is not None and found:
        return None
    need = ".".join(map(str, WARP_MIN_MJX))
    return (f"physics: 'warp' needs mujoco-mjx >= {need} with mujoco-warp and a CUDA device; installed: "
            f"mujoco-mjx {mjx_version or 'none'}, mujoco-warp {warp_version or 'none'}; {seen}")


def nvidia_driver() -> tuple[bool, str]:
    """Whether an NVIDIA driver is visible, from its files alone (no jax, no CUDA initialisation)."""
    found = [path for path in NVIDIA_DRIVER_FILES if os.path.exists(path)]
    if found:
        return True, f"NVIDIA driver: {found[0]}"
    return False, "NVIDIA driver: none (" + ", ".join(NVIDIA_DRIVER_FILES) + " absent)"


def cuda_devices() -> tuple[bool, str]:
    """Whether jax sees a CUDA device (imports jax: for task building, not for config validation)."""
    import jax

    devices = jax.devices()
    platforms = sorted({device.platform for device in devices})
    return any(p in ("gpu", "cuda") for p in platforms), f"jax devices: {', '.join(platforms)}"


def warp_stack_problem(device: tuple[bool, str] | None = None) -> str | None:
    """`warp_problem` for this process: package versions and `device` (default: the driver's files, cheap and
    jax-free, for config time; envs.registry.make passes `cuda_devices()` when it builds the tasks)."""
    return warp_problem(installed_version("mujoco-mjx"), installed_version("mujoco-warp"), device or nvidia_driver())
