"""mw-oracle: the real metaworld 3.1.1 package as a subprocess in its own virtual environment, the reference the
MetaWorld port is tested against (docs/metaworld.md). The project never imports `metaworld` itself.

- `ensure_venv()`: the oracle's environment (`python -m venv` + `pip install` of `REQUIREMENTS` from the package
  index), built on first use under `venv_dir()` (default ~/.cache/purejaxsphere/mw-oracle, or $MW_ORACLE_VENV),
  behind a file lock so that parallel pytest workers build it once.
- `Oracle()`: a long-lived server process (oracle_server.py, JSON lines over its stdin/stdout, oracle_protocol.py);
  `shared()` is one per process, closed at exit. `Oracle.make(task, seed=, rand_vec=)` gives a `PackageEnv`.
- `PackageEnv`: the package's goal-observable env behind the pipe, gymnasium-like (`reset`, `step`, plus `state`:
  MjData fields, the previous frame, the reset vector, object and goal positions, after every call).
- `step_many(envs, actions)`: one round trip steps many envs in lockstep (eval --backend metaworld).
- `Oracle.expert(task, obs)`: the package's scripted expert; `Oracle.assets(xmls)`: the package's asset files
  with their sha256.
Command line: `scripts/mw-oracle describe push-v3` (or `python -m envs.metaworld.oracle ...`) runs the server's
one-shot commands (describe, tasks, reset, rollout, assets) in the oracle's environment.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.metaworld import oracle_protocol as wire

REQUIREMENTS = ("metaworld==3.1.1", "mujoco==3.3.0", "gymnasium==1.4.0", "packaging")
SERVER = Path(__file__).with_name("oracle_server.py")
MARKER = ".mw-oracle-ok"  # holds REQUIREMENTS once the install finished; other contents mean rebuild


class OracleError(RuntimeError):
    """The oracle's environment could not be built, or the server answered with an error."""


def venv_dir() -> Path:
    """$MW_ORACLE_VENV, else $XDG_CACHE_HOME (or ~/.cache) / purejaxsphere / mw-oracle."""
    if os.environ.get("MW_ORACLE_VENV"):
        return Path(os.environ["MW_ORACLE_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "purejaxsphere" / "mw-oracle"


def _built(venv: Path) -> bool:
    marker = venv / MARKER
    return marker.is_file() and marker.read_text() == "\n".join(REQUIREMENTS)


def ensure_venv(venv: Path | None = None, log=sys.stderr) -> Path:
    """The oracle's Python interpreter, building its environment first if needed (under an exclusive lock on
    `<venv>.lock`, so concurrent callers wait for one build instead of racing)."""
    venv = Path(venv or venv_dir())
    python = venv / "bin" / "python"
    if _built(venv):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _built(venv):  # another process may have built it while we waited
            print(f"mw-oracle: building {venv} ({', '.join(REQUIREMENTS)}) ...", file=log, flush=True)
            subprocess.run(["rm", "-rf", str(venv)], check=True)
            steps = ([sys.executable, "-m", "venv", str(venv)],
                     [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS])
            for cmd in steps:
                done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if done.returncode != 0:
                    raise OracleError(f"mw-oracle: {' '.join(cmd)} failed:\n{done.stdout[-4000:]}")
            (venv / MARKER).write_text("\n".join(REQUIREMENTS))
    return python


def server_command(*args: str) -> list[str]:
    return [str(ensure_venv()), str(SERVER), *args]


class PackageEnv:
    """One package env in the oracle (gymnasium-like). `state` is the package's state after the last call."""

    def __init__(self, oracle: Oracle, task: str, env_id: int, max_path_length: int, state: dict):
        self.oracle, self.task, self.id = oracle, task, env_id
        self.max_path_length, self.state = max_path_length, state
        self.obs: np.ndarray | None = None

    @property
    def rand_vec(self) -> np.ndarray:
        return self.state["rand_vec"]

    def reset(self) -> tuple[np.ndarray, dict]:
        reply = self.oracle.request("reset", env=self.id)
        self.state, self.obs = reply["state"], reply["obs"]
        return reply["obs"], reply["info"]

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """The package's step on `action` as given (its dtype matters: the package scales it in that dtype)."""
        reply = self.oracle.request("step", env=self.id, action=np.asarray(action))
        self.state, self.obs = reply["state"], reply["obs"]
        return reply["obs"], reply["reward"], reply["terminated"], reply["truncated"], reply["info"]

    def rollout(self, actions: np.ndarray, state: dict | None = None) -> dict:
        """One step per row of `actions`, from the current state or from `state` (set, then a forward pass);
        stacked obs [N, 39], reward, terminated, truncated, info {k: [N]}, state {field: [N, ...]}."""
        traj = self.oracle.request("rollout", env=self.id, actions=np.asarray(actions), state=state)
        self.state = {k: v[-1] for k, v in traj["state"].items()}
        self.obs = traj["obs"][-1]
        return traj

    def expert_rollout(self, steps: int) -> dict:
        """The package's scripted expert acting on this env's observations for `steps` steps (stacked, with
        the actions it took)."""
        traj = self.oracle.request("expert_rollout", env=self.id, steps=steps)
        self.state = {k: v[-1] for k, v in traj["state"].items()}
        self.obs = traj["obs"][-1]
        return traj

    def close(self) -> None:
        self.oracle.request("close", env=self.id)


class Oracle:
    """A server process running the real package; requests are answered in order, one line each."""

    def __init__(self):
        self.process = subprocess.Popen(server_command("serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})

    def request(self, cmd: str, **args: Any) -> dict:
        if self.process.poll() is not None:
            raise OracleError(f"mw-oracle exited with code {self.process.returncode}")
        self.process.stdin.write(wire.dumps({"cmd": cmd, **args}))
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise OracleError(f"mw-oracle closed its output (exit code {self.process.wait()}) on {cmd!r}")
        reply = wire.loads(line)
        if not reply.pop("ok"):
            raise OracleError(f"mw-oracle {cmd}: {reply['error']}")
        return reply

    def tasks(self) -> list[str]:
        return self.request("tasks")["names"]

    def describe(self, task: str) -> dict:
        return self.request("describe", task=task)

    def make(self, task: str, seed: int | None = None, rand_vec: np.ndarray | None = None) -> PackageEnv:
        """The package's goal-observable env for `task` (a short name, "push-v3", or "metaworld/push-v3"),
        constructed with `seed`; with `rand_vec`, its reset vector (object and goal positions) frozen there."""
        task = task.split("/", 1)[-1]
        vec = None if rand_vec is None else np.asarray(rand_vec, np.float64)
        reply = self.request("make", task=task, seed=seed, rand_vec=vec)
        return PackageEnv(self, task, reply["env"], reply["max_path_length"], reply["state"])

    def expert(self, task: str, obs: np.ndarray) -> np.ndarray:
        """The package's scripted expert's action (float32, as the package returns it) for `obs` (sent in its own
        dtype: the expert computes in it)."""
        return self.request("expert", task=task.split("/", 1)[-1], obs=np.asarray(obs))["action"]

    def step_many(self, envs: Sequence[PackageEnv], actions: np.ndarray) -> dict:
        """Row i of `actions` to envs[i], all in one round trip; obs [n, 39], reward [n], truncated [n],
        info {k: [n]} (no states)."""
        return self.request("step_many", envs=[env.id for env in envs], actions=np.asarray(actions))

    def assets(self, xmls: Sequence[str]) -> dict:
        """Files the models assets/sawyer_xyz/<xml> read (relative to the package's assets/) -> sha256, their
        sizes, and the package's LICENSE path and sha256."""
        return self.request("assets", xmls=list(xmls))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SHARED: Oracle | None = None


def shared() -> Oracle:
    """One oracle server per process (started on first use, closed at exit)."""
    global _SHARED
    if _SHARED is None or _SHARED.process.poll() is not None:
        _SHARED = Oracle()
        atexit.register(_SHARED.close)
    return _SHARED


def main(argv: Sequence[str] | None = None) -> int:
    """`mw-oracle ...`: build the environment if needed, then run the server's command line in it."""
    return subprocess.call(server_command(*(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
