"""mw-oracle's server: the real metaworld 3.1.1 package, run in its own virtual environment (never imported by the
project; envs/metaworld/oracle.py builds that environment and starts this file in it).

`python oracle_server.py serve` reads one JSON request per line on stdin and answers one JSON line on stdout
(oracle_protocol.py: arrays as exact base64 frames). Requests are {"cmd": NAME, ...}; answers {"ok": true, ...} or
{"ok": false, "error": TEXT}. Commands (TASK is a v3 name such as "push-v3"; ENV an id from `make`):

  tasks                                     every goal-observable v3 task name
  describe  task                            facts of the package env (xml, spaces, reset ranges, timestep, ...)
  make      task [seed] [rand_vec]          a goal-observable env (the package's constructor, seeded); with rand_vec
                                            its reset vector is frozen there (object/goal positions); -> env
  reset     env                             obs, info, state
  step      env action [with_state]         obs, reward, terminated, truncated, info (+ state)
  step_many envs actions                    lockstep: row i of actions to env i; stacked obs, reward, truncated, info
  rollout   env actions [state]             from the current (or the given) state, one step per action row
  expert    task obs                        the package's scripted expert's action for an observation
  expert_rollout env steps                  the expert acting on the env's own observations, `steps` times
  assets    xmls                            every file the models include (recursively), with sha256, and the license
  close     env

A state is qpos, qvel, qacc_warmstart, mocap_pos, mocap_quat, ctrl (MjData), prev_obs (the previous frame the next
observation carries), rand_vec, goal (_target_pos), objects (_get_pos_objects()), curr_path_length. The same
commands run once from the command line: `python oracle_server.py describe push-v3` (see `--help`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET
from importlib import metadata

import metaworld
import metaworld.policies as policies
import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as GOAL_OBSERVABLE

# oracle_protocol lies beside this file: the project's package is not importable in mw-oracle's environment.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_protocol as wire

SUFFIX = "-goal-observable"
ASSETS = os.path.join(os.path.dirname(metaworld.__file__), "assets")
STATE_FIELDS = ("qpos", "qvel", "qacc_warmstart", "mocap_pos", "mocap_quat", "ctrl")


def task_names() -> list[str]:
    return sorted(key[: -len(SUFFIX)] for key in GOAL_OBSERVABLE)


def construct(task: str, seed: int | None = None, rand_vec=None):
    """The package's goal-observable env; with `rand_vec`, its reset vector is frozen at that vector."""
    if task + SUFFIX not in GOAL_OBSERVABLE:
        raise KeyError(f"unknown MetaWorld task {task!r}")
    env = GOAL_OBSERVABLE[task + SUFFIX](seed=seed)
    if rand_vec is not None:
        env._last_rand_vec = np.asarray(rand_vec, np.float64)
        env._freeze_rand_vec = True
    return env


def state_of(env) -> dict:
    d = env.data
    state = {field: np.array(getattr(d, field)) for field in STATE_FIELDS}
    state.update(prev_obs=np.array(env._prev_obs), rand_vec=np.array(env._last_rand_vec),
                 goal=np.array(env._target_pos), objects=np.array(env._get_pos_objects()),
                 curr_path_length=int(env.curr_path_length))
    return state


def set_state(env, state: dict) -> None:
    """Put the physics (and the previous frame) at `state`, then a forward pass, as the package's set_state."""
    for field in STATE_FIELDS:
        if field in state:
            getattr(env.data, field)[:] = state[field]
    if "prev_obs" in state:
        env._prev_obs = np.array(state["prev_obs"], np.float64)
    if "curr_path_length" in state:
        env.curr_path_length = int(state["curr_path_length"])
    mujoco.mj_forward(env.model, env.data)


def expert_policy(task: str):
    """The package's scripted expert (metaworld.policies) for a task."""
    name = "Sawyer" + "".join(part.capitalize() for part in task.split("-")) + "Policy"
    return getattr(policies, name)()


def describe(task: str) -> dict:
    env = construct(task, seed=0)
    m = env.model
    space = env._random_reset_space
    return {"task": task, "class": type(env).__mro__[1].__name__, "xml": os.path.relpath(env.model_name, ASSETS),
            "max_path_length": env.max_path_length, "frame_skip": env.frame_skip,
            "action_scale": env.action_scale, "timestep": m.opt.timestep, "nq": m.nq, "nv": m.nv, "nu": m.nu,
            "nbody": m.nbody, "ngeom": m.ngeom, "nmocap": m.nmocap,
            # the bounds the package clips its observations to (observation_space is gymnasium's, unclipped)
            "observation_low": env.sawyer_observation_space.low, "observation_high": env.sawyer_observation_space.high,
            "goal_low": env.goal_space.low, "goal_high": env.goal_space.high,
            "action_low": env.action_space.low, "action_high": env.action_space.high,
            "rand_low": space.low, "rand_high": space.high, "hand_init_pos": np.asarray(env.hand_init_pos),
            "mocap_low": env.mocap_low, "mocap_high": env.mocap_high,
            "metaworld": metadata.version("metaworld"), "mujoco": mujoco.__version__}


def step_result(env, action, with_state: bool = True) -> dict:
    obs, reward, terminated, truncated, info = env.step(action)
    env._oracle_obs = obs
    out = {"obs": np.asarray(obs), "reward": float(reward), "terminated": bool(terminated),
           "truncated": bool(truncated), "info": {k: float(v) for k, v in info.items()}}
    if with_state:
        out["state"] = state_of(env)
    return out


def stack(rows: list[dict]) -> dict:
    """[{obs, reward, info: {k}}] -> {obs: [N, ...], reward: [N], info: {k: [N]}} (also for states)."""
    out = {}
    for key, first in rows[0].items():
        if isinstance(first, dict):
            out[key] = stack([row[key] for row in rows])
        else:
            out[key] = np.stack([np.asarray(row[key]) for row in rows])
    return out


def referenced_files(xml_path: str, root_dir: str | None = None) -> list[str]:
    """Every file an MJCF model reads: its includes (recursively) and each `file*` attribute (meshes, textures,
    including cube faces). MuJoCo resolves all of them against the top-level model's directory; these models set
    no meshdir/texturedir/assetdir (checked: one is found only in an XML comment, which the parser skips)."""
    root_dir = root_dir or os.path.dirname(xml_path)
    files = [os.path.normpath(xml_path)]
    for element in ET.parse(xml_path).iter():
        if element.tag == "compiler" and {"meshdir", "texturedir", "assetdir"} & set(element.attrib):
            raise NotImplementedError(f"{xml_path}: compiler directories are not handled")
        for attr, value in element.attrib.items():
            if not attr.startswith("file"):
                continue
            path = os.path.normpath(os.path.join(root_dir, value))
            files.extend(referenced_files(path, root_dir) if element.tag == "include" else [path])
    return files


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assets(xmls: list[str]) -> dict:
    """The files the models `assets/sawyer_xyz/<xml>` read, relative to the package's assets/, with sha256."""
    paths = sorted({p for xml in xmls for p in referenced_files(os.path.join(ASSETS, "sawyer_xyz", xml))})
    dist = metadata.distribution("metaworld")
    license_file = next(f for f in dist.files if f.name == "LICENSE")
    return {"root": ASSETS, "metaworld": dist.version,
            "files": {os.path.relpath(p, ASSETS): sha256(p) for p in paths},
            "sizes": {os.path.relpath(p, ASSETS): os.path.getsize(p) for p in paths},
            "license": str(dist.locate_file(license_file)), "license_sha256": sha256(dist.locate_file(license_file))}


class Server:
    """The envs of one session, by id, and the command handlers."""

    def __init__(self):
        self.envs: dict[int, object] = {}
        self.made = 0
        self.experts: dict[str, object] = {}

    def env(self, env_id: int):
        if env_id not in self.envs:
            raise KeyError(f"no env {env_id}")
        return self.envs[env_id]

    def expert(self, task: str):
        if task not in self.experts:
            self.experts[task] = expert_policy(task)
        return self.experts[task]

    def handle(self, cmd: str, args: dict) -> dict:
        if cmd == "tasks":
            return {"names": task_names()}
        if cmd == "describe":
            return describe(args["task"])
        if cmd == "make":
            env = construct(args["task"], args.get("seed"), args.get("rand_vec"))
            env_id, self.made = self.made, self.made + 1
            self.envs[env_id] = env
            env._oracle_task, env._oracle_obs = args["task"], None
            return {"env": env_id, "max_path_length": env.max_path_length, "state": state_of(env)}
        if cmd == "reset":
            env = self.env(args["env"])
            obs, info = env.reset()
            env._oracle_obs = obs
            return {"obs": obs, "info": info, "state": state_of(env)}
        if cmd == "step":
            return step_result(self.env(args["env"]), args["action"], args.get("with_state", True))
        if cmd == "step_many":
            envs = [self.env(i) for i in args["envs"]]
            return stack([step_result(env, a, False) for env, a in zip(envs, args["actions"], strict=True)])
        if cmd == "rollout":
            env = self.env(args["env"])
            if args.get("state") is not None:
                set_state(env, args["state"])
            return stack([step_result(env, a) for a in args["actions"]])
        if cmd == "expert":
            return {"action": self.expert(args["task"]).get_action(np.asarray(args["obs"]))}
        if cmd == "expert_rollout":
            env = self.env(args["env"])
            # The last observation the env returned (calling _get_obs here would shift the package's previous frame).
            policy, obs, rows = self.expert(env._oracle_task), env._oracle_obs, []
            if obs is None:
                raise ValueError("expert_rollout acts on the env's last observation: reset or step it first")
            for _ in range(int(args["steps"])):
                action = policy.get_action(obs)
                rows.append({"action": action, **step_result(env, action)})
                obs = rows[-1]["obs"]
            return stack(rows)
        if cmd == "assets":
            return assets(args["xmls"])
        if cmd == "close":
            self.envs.pop(args["env"], None)
            return {}
        raise KeyError(f"unknown command {cmd!r}")


def serve() -> None:
    """The request loop; stdout carries the protocol only (anything the package prints goes to stderr)."""
    out, sys.stdout = sys.stdout, sys.stderr
    server = Server()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = wire.loads(line)
            reply = {"ok": True, **server.handle(request.pop("cmd"), request)}
        except Exception as error:  # reported to the client, which raises it
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        out.write(wire.dumps(reply))
        out.flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mw-oracle", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="the JSON-lines server on stdin/stdout")
    sub.add_parser("tasks", help="the goal-observable v3 task names")
    d = sub.add_parser("describe", help="facts of a task's package env (JSON)")
    d.add_argument("task")
    r = sub.add_parser("reset", help="reset with a seed: object/goal positions, observation and state (JSON)")
    r.add_argument("task")
    r.add_argument("--seed", type=int, default=0)
    ro = sub.add_parser("rollout", help="a trajectory (npz) under given actions or the package's scripted expert")
    ro.add_argument("task")
    ro.add_argument("--out", required=True)
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--actions", help="(N, 4) .npy; default: the scripted expert")
    ro.add_argument("--steps", type=int, default=100)
    a = sub.add_parser("assets", help="files the models read, with sha256 (JSON)")
    a.add_argument("xmls", nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return serve()
    server = Server()
    if args.cmd in ("reset", "rollout"):
        env_id = server.handle("make", {"task": args.task, "seed": args.seed})["env"]
        first = server.handle("reset", {"env": env_id})
    if args.cmd == "rollout":
        if args.actions:
            traj = server.handle("rollout", {"env": env_id, "actions": np.load(args.actions)})
        else:
            traj = server.handle("expert_rollout", {"env": env_id, "steps": args.steps})
        flat = {k: v for k, v in traj.items() if not isinstance(v, dict)}
        flat.update({f"info_{k}": v for k, v in traj["info"].items()})
        flat.update({f"state_{k}": v for k, v in traj["state"].items()})
        np.savez(args.out, first_obs=first["obs"], **flat)
        print(f"{args.task}: {len(traj['reward'])} steps, return {float(np.sum(traj['reward'])):.3f} -> {args.out}")
        return None
    result = {"tasks": lambda: {"names": task_names()}, "describe": lambda: describe(args.task),
              "reset": lambda: first, "assets": lambda: assets(args.xmls)}[args.cmd]()
    print(json.dumps(_plain(result), indent=1))
    return None


def _plain(value):
    """Arrays as lists, for the human-readable command-line output."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


if __name__ == "__main__":
    main()
