"""A headless OpenGL backend for MuJoCo rendering: EGL (GPU machines) or OSMesa (software, CPU machines).

MuJoCo's Python bindings pick their GL platform from `MUJOCO_GL` (and PyOpenGL from `PYOPENGL_PLATFORM`) when they
are first imported, and a backend that is missing or broken can fail in ways a process does not recover from
(a crash inside the driver, a half-initialized PyOpenGL). So each candidate is tried in a fresh Python process that
renders a tiny scene; the first that works is written into this process's environment, before anything here
imports PyOpenGL. An explicit `MUJOCO_GL` is the only candidate tried. This module imports neither mujoco nor jax.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping, Sequence

GL_BACKENDS = ("egl", "osmesa")  # the order tried when MUJOCO_GL is unset: hardware first
OSMESA_PACKAGE = "libosmesa6"  # Debian/Ubuntu's OSMesa library (software rendering)
PROBE_SECONDS = 120.0
# Renders one frame of a one-sphere model with the GL context class the backend names (mujoco.Renderer does
# exactly what purejaxsphere.render does: context, MjrContext, offscreen buffer, readPixels).
PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="0.1"/></worldbody></mujoco>')
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
renderer = mujoco.Renderer(model, 16, 16)
renderer.update_scene(data)
assert renderer.render().shape == (16, 16, 3)
"""


class RenderError(ValueError):
    """Rendering cannot run: no GL backend, or bad render inputs (the CLI exits with code 2)."""


def probe_backend(name: str, environ: MutableMapping[str, str] | None = None) -> str | None:
    """None when `MUJOCO_GL=name` renders in a fresh process, else why not (the last line it printed)."""
    env = dict(os.environ if environ is None else environ)
    env["MUJOCO_GL"] = name
    if name in GL_BACKENDS:
        env["PYOPENGL_PLATFORM"] = name
    try:
        result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                                timeout=PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        return f"no answer within {PROBE_SECONDS:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {result.returncode}"


def no_backend_message(failures: Sequence[tuple[str, str]]) -> str:
    tried = "; ".join(f"MUJOCO_GL={name}: {reason}" for name, reason in failures)
    return (f"no OpenGL backend renders ({tried}). On a CPU machine install OSMesa: apt-get install -y "
            f"{OSMESA_PACKAGE}; on a GPU machine EGL comes with the driver (libegl1). Then unset MUJOCO_GL or set it "
            "to egl or osmesa")


_chosen: dict[str | None, str] = {}  # requested MUJOCO_GL (None: unset) -> the backend that worked


def select_backend(environ: MutableMapping[str, str] | None = None) -> str:
    """The GL backend rendering will use, set in `environ` (default os.environ) as MUJOCO_GL and, for EGL and
    OSMesa, PYOPENGL_PLATFORM. Probed once per requested MUJOCO_GL; RenderError when none works."""
    environ = os.environ if environ is None else environ
    requested = environ.get("MUJOCO_GL") or None
    if requested not in _chosen:
        failures = []
        for name in [requested] if requested else GL_BACKENDS:
            reason = probe_backend(name, environ)
            if reason is None:
                _chosen[requested] = name
                break
            failures.append((name, reason))
        else:
            raise RenderError(no_backend_message(failures))
    name = _chosen[requested]
    environ["MUJOCO_GL"] = name
    if name in GL_BACKENDS:
        environ.setdefault("PYOPENGL_PLATFORM", name)
    return name
