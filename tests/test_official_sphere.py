"""scripts/official_sphere.py: which locked packages it installs, its one edit of the official tree, and its parser of
the official trainer's logs, against a smoke run's real logs (tests/data/official_sphere/, written by the official
trainer: its stdout and its EvalCallback's evaluations.npz, two independent records of the same evaluations)."""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import official_sphere as official  # noqa: E402  (scripts/ is no package: importable after the insert above)

DATA = REPO / "tests" / "data" / "official_sphere"


def lock(**deps):
    """A tiny uv.lock-shaped package table: name -> dependencies (names, `name[extra]` or (name, marker))."""
    def dep(d):
        if isinstance(d, tuple):
            return {"name": d[0], "marker": d[1]}
        name, _, extra = d.partition("[")
        return {"name": name, **({"extra": [extra.rstrip("]")]} if extra else {})}
    table = {name: {"name": name, "version": "1.0", "dependencies": [dep(d) for d in ds]} for name, ds in deps.items()}
    return table


def test_install_set_follows_extras_and_markers_and_drops_the_gpu_only_packages():
    table = lock(sphere=["torch", "jax[cuda12]", "imageio[ffmpeg]", "torchvision", ("win", "sys_platform == 'win32'")],
                 torch=["sympy", "triton", ("nvidia-cublas-cu12", "sys_platform == 'linux'")], jax=["jaxlib"],
                 imageio=["numpy"], torchvision=["pillow"], sympy=[], triton=[], jaxlib=[], numpy=[], pillow=[],
                 win=[], **{"nvidia-cublas-cu12": [], "imageio-ffmpeg": [], "jax-cuda12-plugin": []})
    table["jax"]["optional-dependencies"] = {"cuda12": [{"name": "jax-cuda12-plugin"}, {"name": "jaxlib"}]}
    table["imageio"]["optional-dependencies"] = {"ffmpeg": [{"name": "imageio-ffmpeg"}]}
    assert sys.platform == "linux"
    assert official.install_set(table) == ["imageio", "imageio-ffmpeg", "jax", "jaxlib", "numpy",
                                           "nvidia-cublas-cu12", "sympy", "torch"]


def test_requirement_line_pins_the_version_and_every_locked_artifact():
    pkg = {"name": "optax", "version": "0.2.5", "wheels": [{"hash": "sha256:aa"}, {"hash": "sha256:bb"}],
           "sdist": {"hash": "sha256:cc"}}
    assert official.requirement_line(pkg) == "optax==0.2.5 --hash=sha256:aa --hash=sha256:bb --hash=sha256:cc"


def test_use_cpu_jax_changes_only_the_platform_line(tmp_path):
    script = tmp_path / "setup_env.sh"
    script.write_text("export OMP_NUM_THREADS=8\nexport JAX_PLATFORM_NAME=gpu\nexport XLA_FLAGS=x\n")
    official.use_cpu_jax(script)
    assert script.read_text() == "export OMP_NUM_THREADS=8\nexport JAX_PLATFORM_NAME=cpu\nexport XLA_FLAGS=x\n"
    with pytest.raises(ValueError):
        official.use_cpu_jax(script)  # no gpu line left: not the official file


def test_parse_run_reads_the_recorded_smoke_run():
    npz = np.load(DATA / "evaluations.npz")
    got = official.parse_run(DATA, (DATA / "stdout.log").read_text())
    assert [e["env_steps"] for e in got["evals"]] == EXPECTED_STEPS
    assert [e["success"] for e in got["evals"]] == EXPECTED_SUCCESS
    assert [round(e["return"], 2) for e in got["evals"]] == EXPECTED_RETURNS  # as the stdout prints them
    for e, returns in zip(got["evals"], npz["results"]):
        assert e["episodes"] == 10 and e["episode_returns"] == returns.tolist()
    assert [(t["env_steps"], t["seconds"]) for t in got["timing"]] == EXPECTED_TIMING
    (s0, t0), (s1, t1) = EXPECTED_TIMING[0], EXPECTED_TIMING[-1]
    assert got["env_steps_per_second_training"] == round((s1 - s0) / (t1 - t0), 1)


def test_parse_run_refuses_logs_of_different_runs():
    text = (DATA / "stdout.log").read_text()
    first = next(line for line in text.splitlines() if line.startswith("Eval num_timesteps="))
    value = float(first.split("episode_reward=")[1].split(" ")[0])
    tampered = text.replace(first, first.replace(f"episode_reward={value:.2f}", f"episode_reward={value + 0.02:.2f}"))
    with pytest.raises(ValueError, match="mean return"):
        official.parse_run(DATA, tampered)
    with pytest.raises(ValueError, match="eval steps"):
        official.parse_run(DATA, text.replace(first, ""))


def test_a_rerun_reads_only_the_evaluations_it_wrote(tmp_path):
    """The official trainer writes each run under a new timestamped folder of the same outputs_dir: a rerun must
    parse its own evaluations.npz, not an earlier run's (this failed with two files before)."""
    import os

    old, new = (tmp_path / stamp / "evaluations.npz" for stamp in ("2026-12-07_15-36-13", "2026-12-07_16-25-34"))
    for path in (old, new):
        path.parent.mkdir()
        path.write_bytes(b"")
    os.utime(old, (1000.0, 1000.0))
    os.utime(new, (2000.0, 2000.0))
    assert official.evaluations_written_since(tmp_path, 1500.0) == new
    with pytest.raises(ValueError, match="found 2"):
        official.evaluations_written_since(tmp_path, 500.0)
    with pytest.raises(ValueError, match="found 0"):
        official.evaluations_written_since(tmp_path, 2500.0)


# Read off tests/data/official_sphere/stdout.log by eye (its "Eval num_timesteps=..." / "Success:" lines and the
# last SB3 time/ table): the smoke run of docs/learning.md.
EXPECTED_STEPS, EXPECTED_SUCCESS, EXPECTED_RETURNS = [4096, 8192], [0.0, 0.0], [30.28, 31.01]
EXPECTED_TIMING = [(2560, 418), (5120, 440), (7680, 461)]
