"""`purejaxsphere render RUN_DIR` and `video=true`: headless videos of a trained policy.

Two tiny runs are trained once per module through the CLI, both with `video=true`: HumanoidBench h1_stand then
MetaWorld push-v3 on C MuJoCo (seeds 0 and 3, W&B offline), and Brax reacher on MJX (the smoke suite). The videos
are decoded with imageio's ffmpeg, and frames are compared with frames drawn again from the same MuJoCo state.
The tests need an OpenGL backend (EGL or OSMesa; CI installs libosmesa6) and skip, saying so, without one, except
the test of the error that its absence gives.
"""

import json

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
from conftest import TINY

from purejaxsphere import evaluate, headless, render
from purejaxsphere.cli import main

QUIET = ["progress=false"]
# imageio's reader starts ffmpeg with fork + exec after jax has started: JAX's fork warning does not apply.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


@pytest.fixture(scope="module")
def gl():
    try:
        return headless.select_backend()
    except headless.RenderError as error:
        pytest.skip(f"no OpenGL library to render with (apt-get install -y libosmesa6): {error}")


@pytest.fixture(scope="module")
def cpu_run(gl, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("render") / "cpu"
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")  # conftest turns W&B off; this run checks the videos in W&B's files
    mp.setenv("WANDB_SILENT", "true")
    try:
        code = main(["train", *TINY, *QUIET, "tasks=[humanoidbench/h1_stand,metaworld/push-v3]", "physics=cpu",
                     "seeds=[0,3]", "eval.episodes=1", "total_timesteps=32", "eval.interval=32", "video=true",
                     f"run_dir={run_dir}"])
    finally:
        mp.undo()
    assert code == 0
    return run_dir


@pytest.fixture(scope="module")
def brax_run(gl, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("render") / "brax"
    code = main(["train", *TINY, *QUIET, "wandb.mode=disabled", "tasks=[brax/reacher]", "seeds=1",
                 "total_timesteps=32", "eval.interval=32", "video=true", f"run_dir={run_dir}"])
    assert code == 0
    return run_dir


def decode(path):
    """Every frame of a video file (iter_data: the ffmpeg reader's length is inf, so list() cannot size it)."""
    with imageio.get_reader(str(path)) as reader:
        return np.stack([frame for frame in reader.iter_data()])


def restored(run_dir):
    cfg = evaluate.run_config(run_dir)
    trainer = evaluate.build_trainer(cfg)
    return trainer, evaluate.restore(evaluate.choose_checkpoint(run_dir, None, print), trainer)


def test_in_run_videos_go_to_the_run_directory_and_wandb(cpu_run):
    names = sorted(p.name for p in (cpu_run / "videos").glob("*.mp4"))
    # One episode per task at its end, by the first seed, named after the task's final checkpoint.
    assert names == ["t000_c00001_0-humanoidbench-h1_stand_seed0.mp4", "t001_c00001_1-metaworld-push-v3_seed0.mp4"]
    for name in names:
        meta = json.loads((cpu_run / "videos" / name).with_suffix(".json").read_text())
        frames = decode(cpu_run / "videos" / name)
        assert frames.shape == (meta["frames"], 240, 320, 3) and meta["frames"] == meta["lengths"][0] + 1
    # W&B: both videos in seed 0's run (its id ends in -s0), none in seed 3's.
    runs = {path.name[-2:]: path for path in (cpu_run / "wandb").glob("offline-run-*")}
    assert sorted(runs) == ["s0", "s3"]
    assert len(list((runs["s0"] / "files" / "media").rglob("*.mp4"))) == 2
    assert not list(runs["s3"].rglob("*.mp4"))


def test_render_command_writes_the_chosen_videos(cpu_run, tmp_path, capsys):
    out = tmp_path / "videos"
    args = ["render", str(cpu_run), "--tasks", "1", "--seeds", "3", "--episodes", "2", "--width", "160",
            "--height", "120", "--out", str(out), "--gif"]
    assert main(args) == 0
    assert "push-v3" in capsys.readouterr().out
    video = out / "t001_c00001_1-metaworld-push-v3_seed3.mp4"
    meta = json.loads(video.with_suffix(".json").read_text())
    assert meta["seed"] == 3 and meta["lengths"] == [20, 20] and meta["fps"] == 80.0  # 1 / (0.0025 s x 5)
    frames = decode(video)
    assert frames.shape == (2 * 21, 120, 160, 3)  # each episode: its reset state, then one frame per step
    # MetaWorld's positions are fixed and the policy deterministic: the two episodes are the same.
    assert meta["returns"][0] == meta["returns"][1]
    gif = imageio.mimread(str(video.with_suffix(".gif")))
    assert len(gif) == 21 and gif[0].shape[:2] == (120, 160)  # every 2nd frame: 80 fps -> 25 ms per GIF frame


def test_frames_move_and_a_state_draws_the_same_pixels(cpu_run, gl):
    trainer, checkpoint = restored(cpu_run)
    task = trainer.tasks[0]  # humanoidbench/h1_stand, seed 3 (member 1)
    state = jax.device_get(checkpoint.state)
    policy = render.member_policy(trainer, state, 1)
    player = render.make_player(task)
    episode = render.play_episode(player, policy, 0, task.episode_length)
    assert episode.states.shape[0] == episode.length + 1
    camera = render.task_camera(task.name, player.model)
    first = render.FrameRenderer(player.model, 160, 120, camera, gl)
    frames = render.episode_frames(first, episode)
    first.close()
    # The robot moves (and the tracking camera with it): every frame differs from the one before.
    assert all(np.any(a != b) for a, b in zip(frames[:-1], frames[1:]))
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5
    # A fresh renderer (new GL context, new MjData) draws a recorded state pixel for pixel alike.
    second = render.FrameRenderer(player.model, 160, 120, camera, gl)
    k = episode.length // 2
    np.testing.assert_array_equal(second.render(episode.states[k]), frames[k])
    second.close()
    # The same policy and reset seed replay the same episode on C MuJoCo.
    np.testing.assert_array_equal(render.play_episode(player, policy, 0, task.episode_length).states, episode.states)


def test_brax_tasks_render_and_their_video_shows_the_episode(brax_run, gl):
    (video,) = (brax_run / "videos").glob("*.mp4")
    meta = json.loads(video.with_suffix(".json").read_text())
    assert video.name == "t000_c00001_0-brax-reacher_seed0.mp4" and meta["successes"] == [None]
    decoded = decode(video)
    assert decoded.shape == (21, 240, 320, 3) and meta["fps"] == 50.0
    # The file shows the drawn frames (H.264 is lossy: close, not equal), overlay included.
    trainer, checkpoint = restored(brax_run)
    task = trainer.tasks[0]
    player = render.make_player(task)
    episode = render.play_episode(player, render.member_policy(trainer, jax.device_get(checkpoint.state), 0), 0,
                                  task.episode_length)
    assert episode.rewards.sum() == pytest.approx(meta["returns"][0], rel=1e-6)
    renderer = render.FrameRenderer(player.model, 320, 240, render.task_camera(task.name, player.model), gl)
    k = episode.length
    drawn = render.draw_overlay(renderer.render(episode.states[k]),
                                render.overlay_lines(task.name, 0, episode, k, task.episode_length, False))
    renderer.close()
    assert np.abs(drawn.astype(int) - decoded[k]).mean() < 4.0
    assert np.abs(decoded[0].astype(int) - decoded[k]).mean() > 0.1  # the arm moved


def test_report_links_the_videos(cpu_run, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(cpu_run), "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    videos = summary[summary.index("## Videos"):]
    links = [line.split("](")[1].split(")")[0] for line in videos.splitlines() if "](" in line]
    assert len(links) == 2 and all((out / link).resolve().is_file() for link in links)  # relative to the report
    assert "| humanoidbench/h1_stand | 0 | t000_c00001 |" in videos


def test_a_failing_video_warns_and_training_goes_on(tmp_path):
    from types import SimpleNamespace

    from purejaxsphere.checkpoint import Checkpoint, Position

    warnings, logged = [], []
    trainer = SimpleNamespace(seeds=[0], tasks=[SimpleNamespace(name="brax/reacher")])  # no networks: fails
    trackers = SimpleNamespace(log_video=lambda *args: logged.append(args))
    recorder = render.VideoRecorder(trainer, tmp_path, trackers, warn=warnings.append)
    assert recorder(Checkpoint(Position(0, 1), None, None, None, task_final=True)) is None
    assert len(warnings) == 1 and warnings[0].startswith("video of task 0 not written") and not logged


def test_overlay_says_task_step_return_and_success():
    episode = render.Episode(np.zeros((4, 1)), np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, 1.0]))
    assert render.overlay_lines("metaworld/push-v3", 3, episode, 0, 500, True) == [
        "metaworld/push-v3  seed 3", "step 0/500", "return 0.00", "success no"]
    assert render.overlay_lines("metaworld/push-v3", 3, episode, 2, 500, True)[2:] == ["return 3.00", "success yes"]
    assert render.overlay_lines("brax/reacher", 0, episode, 3, 20, False)[2:] == ["return 3.50", "success n/a"]
    frame = np.zeros((120, 160, 3), np.uint8)
    drawn = render.draw_overlay(frame, ["step 1/20"])
    assert drawn.shape == frame.shape and drawn[:20, :60].max() > 200 and not drawn[60:].any()  # text, top left
    assert [render.gif_stride(fps) for fps in (80.0, 50.0, 30.0, 200.0)] == [2, 1, 1, 4]


def test_bad_inputs_exit_2_with_one_line(cpu_run, tmp_path, capsys, monkeypatch):
    no_checkpoints = tmp_path / "no_checkpoints"
    no_checkpoints.mkdir()
    (no_checkpoints / "config.yaml").write_text((cpu_run / "config.yaml").read_text())
    cases = {
        "no usable checkpoint": [str(no_checkpoints)],
        "not a directory": [str(tmp_path / "missing")],
        "no checkpoint 't009_c00001'": [str(cpu_run), "--checkpoint", "t009_c00001"],
        "--tasks: 'metaworld/hammer-v3'": [str(cpu_run), "--tasks", "metaworld/hammer-v3"],
        "--tasks: '2'": [str(cpu_run), "--tasks", "2"],
        "--seeds: '1'": [str(cpu_run), "--seeds", "1"],
        "must be positive and even": [str(cpu_run), "--width", "161"],
    }
    for expected, args in cases.items():
        capsys.readouterr()
        assert main(["render", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (args, err)


def test_no_gl_backend_exits_2_saying_what_to_install(tmp_path, capsys, monkeypatch):
    """An explicit MUJOCO_GL is the only backend tried; GLX without a display cannot render. Both commands that
    render refuse at once, before reading the run or training."""
    monkeypatch.setenv("MUJOCO_GL", "glx")
    monkeypatch.delenv("DISPLAY", raising=False)
    for command in (["render", str(tmp_path)],
                    ["train", *TINY, *QUIET, "tasks=[brax/reacher]", "video=true", f"run_dir={tmp_path / 'never'}"]):
        capsys.readouterr()
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert "MUJOCO_GL=glx" in err and "apt-get install -y libosmesa6" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "never").exists()
