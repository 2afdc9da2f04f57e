"""The GPU extras of pyproject.toml (`pip install -e ".[cuda12]"` / `".[cuda13]"`): they name extras the pinned jax
provides, at the pinned version, and (slow, needs PyPI) pip resolves them to the CUDA plugin of that version."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
GPU_EXTRAS = ("cuda12", "cuda13")


def jax_pin() -> str:
    (pin,) = [dep.split("==")[1] for dep in PROJECT["dependencies"] if dep.startswith("jax==")]
    return pin


@pytest.mark.parametrize("extra", GPU_EXTRAS)
def test_gpu_extra_is_jax_extra_at_the_pin(extra):
    assert PROJECT["optional-dependencies"][extra] == [f"jax[{extra}]=={jax_pin()}"]
    # The installed jax is the pinned one, and its own metadata offers the extra we name.
    assert importlib.metadata.version("jax") == jax_pin()
    assert extra in importlib.metadata.metadata("jax").get_all("Provides-Extra")


@pytest.mark.slow  # needs PyPI; ~20-30 s per extra here. Without fast-deps, an index that serves no PEP 658
# metadata files (this machine's) makes pip fetch every CUDA wheel to read its metadata: 15 wheels, 3.2 GB.
@pytest.mark.parametrize("extra", GPU_EXTRAS)
def test_gpu_extra_resolves(extra):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--use-feature=fast-deps", "--report", "-",
         "-e", f"{REPO}[{extra}]"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.index("{"):])
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    assert versions[f"jax-{extra}-plugin"] == jax_pin()
    assert versions[f"jax-{extra}-pjrt"] == jax_pin()
    assert versions.get("jax", jax_pin()) == jax_pin()  # absent: the installed (pinned) jax is kept
