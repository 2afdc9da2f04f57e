"""The MetaWorld XML, meshes and textures shipped in envs/metaworld/assets/ are the package's, byte for byte.

mw-oracle follows the ten CW10 models' includes and `file` attributes in the package (metaworld 3.1.1, in its own
environment) and reports every file's sha256; the shipped copy must hold exactly those files, unchanged, plus the
package's LICENSE and a SOURCE.md that lists them. And the models compiled from the copy equal the models compiled
from the package's own files (read from the oracle's environment by path: file reading, no import).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mujoco
import numpy as np
import pytest

import envs.metaworld as mw
from envs.metaworld import oracle
from envs.metaworld.model import ASSETS_DIR, xml_path
from envs.metaworld.tasks import TASKS

XMLS = {name: TASKS[name].xml for name in mw.CW10_NAMES}
EXTRA = {"LICENSE", "SOURCE.md"}


@pytest.fixture(scope="module")
def package():
    with oracle.Oracle() as o:
        return o.assets(sorted(set(XMLS.values())))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_files_are_the_packages(package):
    shipped = {str(p.relative_to(ASSETS_DIR)) for p in ASSETS_DIR.rglob("*") if p.is_file()}
    assert shipped - EXTRA == set(package["files"])
    for path, digest in package["files"].items():
        assert sha256(ASSETS_DIR / path) == digest, path
    assert sha256(ASSETS_DIR / "LICENSE") == package["license_sha256"]
    assert "MIT License" in (ASSETS_DIR / "LICENSE").read_text()
    source = (ASSETS_DIR / "SOURCE.md").read_text()
    assert f"metaworld {package['metaworld']}" in source
    for path in package["files"]:
        assert f"| {path} |" in source, path
    assert sum(package["sizes"].values()) < 15e6  # what ships stays modest (11.6 MB measured)


def test_every_model_references_files_in_the_copy(package):
    for name, xml in XMLS.items():
        assert f"sawyer_xyz/{xml}" in package["files"], name


@pytest.mark.parametrize("name", mw.CW10_NAMES)
def test_models_from_the_copy_equal_the_packages(package, name):
    ours = mujoco.MjModel.from_xml_path(xml_path(XMLS[name]))
    theirs = mujoco.MjModel.from_xml_path(str(Path(package["root"]) / "sawyer_xyz" / XMLS[name]))
    for field in ("geom_type", "geom_size", "geom_pos", "body_mass", "mesh_vert", "mesh_face", "tex_data",
                  "qpos0", "eq_data", "actuator_gainprm"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field), err_msg=f"{name}: {field}")
