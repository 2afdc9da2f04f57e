"""Watch a trained policy: `purejaxsphere render RUN_DIR` and the in-run videos of `video=true`.

A video shows the deterministic policy of one seed (`train.deterministic_action`: the actor's mean on the
observation normalized with that seed's statistics) for a few episodes of one task:
- HumanoidBench and MetaWorld run on C MuJoCo with the untouched model (`task.cpu()`, the gymnasium env that
  `eval --backend cpu` checks against), whatever physics the run trained on, so an MJX-trained policy is watched
  on C MuJoCo. Brax tasks exist on MJX only: their episode runs on MJX (the policy's own physics) and each state
  is drawn with Brax's own MjModel (`sys.mj_model`).
- The physics rollout and the drawing are separate: an episode is first played and its MuJoCo states recorded
  (`mj_getState`, mjSTATE_INTEGRATION), then each state is set into a scratch MjData of the same model, forwarded
  and drawn. A frame is therefore a pure function of (model, state, camera), and the simulation is never touched.
- Camera: HumanoidBench's own `cam_default` (it tracks the pelvis's centre of mass); MetaWorld: fixed on the
  table, from the front left; Brax: a camera tracking the root body when the root moves (free or slide joint), else a
  fixed view of the whole model.
- Each frame carries an overlay: task and seed, step, return so far, success flag (n/a without a criterion).
- Episode e (0, 1, ...) starts from reset seed e, the same for every policy seed, so videos of seeds compare.
Files: `<checkpoint>_<task index>-<task>_seed<seed>.mp4` (and .gif with `--gif`) with a `.json` beside it (returns,
lengths, successes); default folder RUN_DIR/videos, which `report` links.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import mujoco
import numpy as np

from purejaxsphere import checkpoint as ckpt
from purejaxsphere import evaluate
from purejaxsphere.headless import RenderError, select_backend

if TYPE_CHECKING:
    from envs.core import Env

HUMANOIDBENCH_CAMERA = "cam_default"  # HumanoidBench's default view: mode trackcom on the pelvis
METAWORLD_LOOKAT = (0.0, 0.65, 0.1)  # the middle of the table, a little above it (MetaWorld's world frame)
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION  # everything mj_forward needs (qpos, mocap, ...), and more
GIF_MIN_DELAY_S = 0.02  # browsers show GIF frames shorter than 20 ms at 100 ms: GIFs drop frames instead
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240


# --- drawing ---------------------------------------------------------------------------------------------------


def gl_context_class(backend: str) -> type:
    """MuJoCo's GLContext for a MUJOCO_GL value (as mujoco.gl_context maps them on Linux: anything else is GLFW)."""
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.glfw import GLContext
    return GLContext


def named_camera(model: mujoco.MjModel, name: str) -> mujoco.MjvCamera:
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam_id < 0:
        raise RenderError(f"the model has no camera {name!r}")
    camera = mujoco.MjvCamera()
    camera.type, camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, cam_id
    return camera


@dataclass(frozen=True)
class FreeCamera:
    """A camera at fixed spherical coordinates around `lookat` or, with `track_body`, around that body's subtree
    centre of mass in each state (set per frame, so a frame depends on its state only: MuJoCo's own tracking
    camera moves by smoothed increments, which depend on the frames before)."""

    lookat: tuple[float, float, float]
    distance: float
    elevation: float
    azimuth: float
    track_body: int | None = None

    def mjv(self) -> mujoco.MjvCamera:
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = self.lookat
        camera.distance, camera.elevation, camera.azimuth = self.distance, self.elevation, self.azimuth
        return camera


def root_moves(model: mujoco.MjModel) -> bool:
    """Whether the first body below the world has a free or slide joint (a robot that goes places)."""
    moving = (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_SLIDE)
    return model.nbody > 1 and any(model.jnt_type[j] in moving and model.jnt_bodyid[j] == 1 for j in range(model.njnt))


Camera = mujoco.MjvCamera | FreeCamera


def task_camera(task_name: str, model: mujoco.MjModel) -> Camera:
    """HumanoidBench: its own tracking camera; MetaWorld: fixed on the table (the package's corner cameras come out
    upside down in plain MuJoCo); Brax: following the root body from the side when it moves, else the whole model
    from above."""
    if task_name.startswith("humanoidbench/"):
        return named_camera(model, HUMANOIDBENCH_CAMERA)
    if task_name.startswith("metaworld/"):
        return FreeCamera(METAWORLD_LOOKAT, 1.75, -30.0, 135.0)
    center = tuple(float(x) for x in model.stat.center)
    if root_moves(model):
        return FreeCamera(center, 4.0, -15.0, 90.0, track_body=1)
    return FreeCamera(center, float(model.stat.extent), -60.0, 90.0)


class FrameRenderer:
    """Draws MuJoCo states of one model offscreen: `render(state) -> uint8 [height, width, 3]`."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, camera: Camera, backend: str):
        self.model, self.width, self.height = model, width, height
        self.spec = camera if isinstance(camera, FreeCamera) else None
        self.camera = camera.mjv() if isinstance(camera, FreeCamera) else camera
        # The offscreen buffer size is visual metadata, not physics: grow it to the frame size if needed.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._data = mujoco.MjData(model)
        self._gl = gl_context_class(backend)(width, height)
        self._gl.make_current()
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._option, self._perturb = mujoco.MjvOption(), mujoco.MjvPerturb()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._rect = mujoco.MjrRect(0, 0, width, height)

    def render(self, state: np.ndarray) -> np.ndarray:
        mujoco.mj_setState(self.model, self._data, np.asarray(state, np.float64), STATE_SPEC)
        mujoco.mj_forward(self.model, self._data)
        if self.spec is not None and self.spec.track_body is not None:
            self.camera.lookat[:] = self._data.subtree_com[self.spec.track_body]
        self._gl.make_current()
        mujoco.mjv_updateScene(self.model, self._data, self._option, self._perturb, self.camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        pixels = np.empty((self.height, self.width, 3), np.uint8)
        mujoco.mjr_readPixels(pixels, None, self._rect, self._context)
        return np.flipud(pixels)  # OpenGL's rows run bottom-up

    def close(self) -> None:
        self._context.free()
        self._gl.free()


def get_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC), np.float64)
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


# --- playing an episode ------------------------------------------------------------------------------------------


class Player(Protocol):
    """One env of a task on the physics a video shows; `model` draws its states."""

    model: mujoco.MjModel
    action_size: int
    dt: float

    def reset(self, seed: int) -> np.ndarray: ...  # -> observation

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]: ...  # obs, reward, success, done

    def state(self) -> np.ndarray: ...  # the MuJoCo state now (mjSTATE_INTEGRATION)


class GymPlayer:
    """HumanoidBench / MetaWorld on C MuJoCo with the untouched model: the task's gymnasium env (`task.cpu()`)."""

    def __init__(self, task: Env):
        self.env = task.cpu()
        self.model = self.env.model
        self.action_size = int(self.env.action_space.shape[0])
        self.dt = float(task.dt)

    def reset(self, seed: int) -> np.ndarray:
        return np.asarray(self.env.reset(seed=seed)[0])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.asarray(obs), float(reward), float(info["success"]), bool(terminated or truncated)

    def state(self) -> np.ndarray:
        return get_state(self.model, self.env.data)


class BraxPlayer:
    """A Brax task on MJX (its only physics), jitted one env at a time; states drawn with Brax's MjModel."""

    def __init__(self, task: Env):
        import copy

        import jax

        self.task, self.jax = task, jax
        self.model = copy.deepcopy(task.mj_model)  # copied: the renderer sets its buffer size
        self.action_size, self.dt = int(task.action_size), float(task.dt)
        self._data = mujoco.MjData(self.model)
        self._reset, self._step = jax.jit(task.reset), jax.jit(task.step)
        self._state: Any = None

    def reset(self, seed: int) -> np.ndarray:
        self._state = self._reset(self.jax.random.PRNGKey(seed))
        return np.asarray(self._state.obs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        self._state = self._step(self._state, self.jax.numpy.asarray(action, self.jax.numpy.float32))
        return (np.asarray(self._state.obs), float(self._state.reward), float(self._state.info["success"]),
                bool(self._state.done > 0.5))

    def state(self) -> np.ndarray:
        mjx_data = self._state.pipeline_state.pipeline_state
        self._data.qpos[:], self._data.qvel[:] = np.asarray(mjx_data.qpos), np.asarray(mjx_data.qvel)
        return get_state(self.model, self._data)


def make_player(task: Env) -> Player:
    if task.name.startswith("brax/"):
        return BraxPlayer(task)
    if not hasattr(task, "cpu"):
        raise RenderError(f"{task.name}: no C MuJoCo env to render")
    return GymPlayer(task)


@dataclass
class Episode:
    """One played episode: MuJoCo states [T + 1, n] (reset, then after each step), rewards and success flags [T]."""

    states: np.ndarray
    rewards: np.ndarray
    success: np.ndarray

    @property
    def length(self) -> int:
        return len(self.rewards)


Policy = Callable[[np.ndarray], np.ndarray]


def play_episode(player: Player, policy: Policy, seed: int, max_steps: int) -> Episode:
    """Reset with `seed`, then step `policy(obs) -> action` (its first `player.action_size` entries, as PadWrapper
    does) until the episode ends or `max_steps`."""
    obs, states, rewards, success = player.reset(seed), [player.state()], [], []
    for _ in range(max_steps):
        obs, reward, flag, done = player.step(policy(obs)[: player.action_size])
        states.append(player.state())
        rewards.append(reward)
        success.append(flag)
        if done:
            break
    return Episode(np.stack(states), np.asarray(rewards, np.float64), np.asarray(success, np.float64))


def member_policy(trainer: Any, state: Any, member: int) -> Policy:
    """The deterministic policy of member `member` of a (host) carry: raw observation -> action [action_size]."""
    import jax

    act = evaluate.make_act_fn(trainer)
    params, stats = jax.tree.map(lambda x: np.asarray(x)[member: member + 1], (state.actor_params, state.obs_stats))
    return lambda obs: act(params, stats, evaluate.pad_obs(np.asarray(obs)[None, None], trainer.obs_size))[0, 0]


# --- frames and files ----------------------------------------------------------------------------------------------


def overlay_lines(task_name: str, seed: int, episode: Episode, step: int, max_steps: int,
                  has_success: bool) -> list[str]:
    """The overlay of frame `step` (0: the reset state): task, step, return so far, success flag."""
    success = ("yes" if episode.success[step - 1] > 0.5 else "no") if has_success and step > 0 else (
        "no" if has_success else "n/a")
    return [f"{task_name}  seed {seed}", f"step {step}/{max_steps}",
            f"return {episode.rewards[:step].sum():.2f}", f"success {success}"]


def draw_overlay(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """`lines` in white on a dark translucent box at the top left (Pillow's built-in font, scaled to the frame)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame).convert("RGBA")
    size = max(9, frame.shape[0] // 22)
    font = ImageFont.load_default(size=size)
    text = "\n".join(lines)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    box = draw.multiline_textbbox((4, 4), text, font=font, spacing=2)
    draw.rectangle((0, 0, box[2] + 4, box[3] + 4), fill=(0, 0, 0, 140))
    draw.multiline_text((4, 4), text, font=font, fill=(255, 255, 255, 255), spacing=2)
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))


def episode_frames(renderer: FrameRenderer, episode: Episode) -> np.ndarray:
    """The raw frames of an episode, [T + 1, height, width, 3] uint8."""
    return np.stack([renderer.render(state) for state in episode.states])


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """H.264 (yuv420p, widely playable) through imageio's bundled ffmpeg."""
    import warnings

    import imageio.v2 as imageio

    with warnings.catch_warnings():  # JAX warns of any fork; this one execs ffmpeg at once
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        writer = imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
        with writer:
            for frame in frames:
                writer.append_data(frame)


def gif_stride(fps: float) -> int:
    """Keep every n-th frame so that a GIF frame lasts at least GIF_MIN_DELAY_S."""
    return max(1, math.ceil(GIF_MIN_DELAY_S * fps - 1e-9))


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    import imageio.v3 as iio

    stride = gif_stride(fps)
    iio.imwrite(path, np.stack(frames[::stride]), extension=".gif", duration=1000.0 * stride / fps, loop=0)


def video_stem(checkpoint: str, task_index: int, task_name: str, seed: int, suffix: str = "") -> str:
    return f"{checkpoint}_{task_index}-{task_name.replace('/', '-')}_seed{seed}{suffix}"


@dataclass
class Video:
    """What one written video shows (also written beside it as <stem>.json)."""

    path: Path
    task: str
    task_index: int
    seed: int
    checkpoint: str
    fps: float
    frames: int
    returns: list[float]
    lengths: list[int]
    successes: list[float | None]  # the flag at each episode's last step; None without a success criterion
    gif: Path | None = None

    def describe(self) -> str:
        success = ("" if self.successes[0] is None else
                   ", success " + " ".join(f"{s:.0f}" for s in self.successes))
        return (f"{self.path} ({self.task}, seed {self.seed}, {len(self.returns)} episode(s), {self.frames} frames at "
                f"{self.fps:g} fps; return " + " ".join(f"{r:.2f}" for r in self.returns) + success + ")")


def record_video(task: Env, task_index: int, policy: Policy, seed: int, checkpoint: str, out: Path, *,
                 episodes: int = 1, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                 fps: float | None = None, gif: bool = False, backend: str | None = None) -> Video:
    """Play `episodes` episodes of `task` with `policy`, draw them, write the MP4 (and GIF) and the JSON into `out`."""
    backend = backend or select_backend()
    player = make_player(task)
    renderer = FrameRenderer(player.model, width, height, task_camera(task.name, player.model), backend)
    played, frames = [], []
    try:
        for e in range(episodes):
            episode = play_episode(player, policy, e, task.episode_length)
            played.append(episode)  # drawn at once: a MetaWorld reset may move the fixture in the model
            raw = episode_frames(renderer, episode)
            frames += [draw_overlay(frame, overlay_lines(task.name, seed, episode, t, task.episode_length,
                                                         task.has_success)) for t, frame in enumerate(raw)]
    finally:
        renderer.close()
    fps = fps or round(1.0 / player.dt)
    out.mkdir(parents=True, exist_ok=True)
    stem = video_stem(checkpoint, task_index, task.name, seed)
    video = Video(out / f"{stem}.mp4", task.name, task_index, seed, checkpoint, float(fps), len(frames),
                  [float(ep.rewards.sum()) for ep in played], [ep.length for ep in played],
                  [float(ep.success[-1]) if task.has_success and ep.length else None for ep in played])
    write_mp4(video.path, frames, fps)
    if gif:
        video.gif = out / f"{stem}.gif"
        write_gif(video.gif, frames, fps)
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(video).items()}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n")
    return video


# --- the command -----------------------------------------------------------------------------------------------------


def task_selection(spec: str | None, tasks: Sequence[str]) -> list[int]:
    """`--tasks 0,metaworld/push-v3`: indices into the run's sequence or names of its tasks; None: every task."""
    if spec is None:
        return list(range(len(tasks)))
    indices = []
    for part in (part.strip() for part in spec.split(",") if part.strip()):
        if part in tasks:
            indices.append(tasks.index(part))
        elif part.isdigit() and int(part) < len(tasks):
            indices.append(int(part))
        else:
            raise RenderError(f"--tasks: {part!r} is neither a task index 0..{len(tasks) - 1} nor a task of the run "
                              f"({', '.join(tasks)})")
    if not indices:
        raise RenderError(f"--tasks: {spec!r} names no task")
    return list(dict.fromkeys(indices))


def member_selection(spec: str | None, seeds: Sequence[int], dropped: Sequence[int]) -> list[int]:
    """`--seeds 0,2` -> the members (indices) with those seeds; None: the first member not dropped."""
    if spec is None:
        live = [m for m in range(len(seeds)) if m not in dropped]
        return live[:1] or [0]
    try:
        wanted = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise RenderError(f"--seeds: expected seeds like 0,2, got {spec!r}") from None
    unknown = [seed for seed in wanted if seed not in seeds]
    if not wanted or unknown:
        raise RenderError(f"--seeds: {spec!r} names no seed or one the run does not have (seeds {sorted(set(seeds))})")
    return [m for m, seed in enumerate(seeds) if seed in wanted]


def check_size(width: int, height: int, episodes: int, fps: float | None) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise RenderError(f"--width/--height: must be positive and even (H.264), got {width}x{height}")
    if episodes <= 0:
        raise RenderError(f"--episodes: must be positive, got {episodes}")
    if fps is not None and fps <= 0:
        raise RenderError(f"--fps: must be positive, got {fps}")


def run_render(run_dir: str | Path, checkpoint: str | None = None, tasks: str | None = None,
               seeds: str | None = None, episodes: int = 1, width: int = DEFAULT_WIDTH,
               height: int = DEFAULT_HEIGHT, fps: float | None = None, out: str | Path | None = None,
               gif: bool = False, warn: Callable[[str], None] = print) -> list[Video]:
    """Videos of the chosen seeds' deterministic policies on the chosen tasks, from RUN_DIR's newest good
    checkpoint (or `checkpoint`). RenderError / evaluate.EvalError for bad inputs."""
    run_dir = Path(run_dir)
    check_size(width, height, episodes, fps)
    cfg = evaluate.run_config(run_dir)
    indices = task_selection(tasks, cfg.tasks)
    path = evaluate.choose_checkpoint(run_dir, checkpoint, warn)
    backend = select_backend()
    trainer = evaluate.build_trainer(cfg)
    restored = evaluate.restore(path, trainer)
    summary_dropped = evaluate.summary_dropped_seeds(run_dir)
    dropped = set(restored.dropped) | {m for m, s in enumerate(trainer.seeds) if s in summary_dropped}
    members = member_selection(seeds, trainer.seeds, sorted(dropped))
    folder = Path(out) if out else run_dir / "videos"
    videos = []
    for j in indices:
        for m in members:
            policy = member_policy(trainer, restored.state, m)
            videos.append(record_video(trainer.tasks[j], j, policy, trainer.seeds[m], path.name, folder,
                                       episodes=episodes, width=width, height=height, fps=fps, gif=gif,
                                       backend=backend))
    return videos


# --- in runs: video=true -----------------------------------------------------------------------------------------


class VideoRecorder:
    """`video=true`: at each task's end, one episode of that task by the first live seed into RUN_DIR/videos and,
    when W&B is on, into that seed's W&B run (`video/<task>`). A failure warns and never stops the run."""

    def __init__(self, trainer: Any, run_dir: Path, trackers: Any, warn: Callable[[str], None] = print):
        self.trainer, self.folder, self.trackers, self.warn = trainer, Path(run_dir) / "videos", trackers, warn

    def __call__(self, checkpoint: ckpt.Checkpoint) -> Video | None:
        import jax

        position = checkpoint.position
        members = member_selection(None, self.trainer.seeds, checkpoint.dropped)
        j, m = position.task_index, members[0]
        try:
            state = jax.device_get(checkpoint.state)
            video = record_video(self.trainer.tasks[j], j, member_policy(self.trainer, state, m),
                                 self.trainer.seeds[m], position.name, self.folder)
        except Exception as error:  # a video must never stop training
            self.warn(f"video of task {j} not written: {type(error).__name__}: {error}")
            return None
        steps = (j + 1) * self.trainer.plan.total_steps
        self.trackers.log_video(video.seed, f"video/{video.task}", video.path, steps)
        return video
