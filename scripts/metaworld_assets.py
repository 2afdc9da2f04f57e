"""Copy the MetaWorld assets the ten CW10 models read from the package (in mw-oracle's environment) into
envs/metaworld/assets/, with the package's LICENSE and a SOURCE.md listing every file (docs/metaworld.md).

    python scripts/metaworld_assets.py            # (re)write envs/metaworld/assets/
tests/test_metaworld_assets.py checks the copy byte for byte against the package.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs.metaworld as mw
from envs.metaworld import oracle
from envs.metaworld.model import ASSETS_DIR
from envs.metaworld.tasks import TASKS


def source_note(listing: dict, xmls: dict[str, str]) -> str:
    """SOURCE.md: where the files come from and what they are."""
    total = sum(listing["sizes"].values())
    lines = [f"# MetaWorld assets (metaworld {listing['metaworld']}, MIT, see LICENSE)", "",
             f"Copied unchanged by scripts/metaworld_assets.py from the `metaworld=={listing['metaworld']}` wheel",
             "(its `metaworld/assets/`, same layout): every file the ten CW10 models read, found by following their",
             "`<include>`s and `file` attributes. tests/test_metaworld_assets.py checks them byte for byte against",
             "the package in mw-oracle's environment.", "",
             "Models: " + ", ".join(f"{name} ({xml})" for name, xml in xmls.items()), "",
             f"{len(listing['files'])} files, {total / 1e6:.1f} MB:", "", "| bytes | file | sha256 |", "|---:|---|---|"]
    lines += [f"| {listing['sizes'][path]} | {path} | {digest[:16]} |" for path, digest in listing["files"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    xmls = {name: TASKS[name].xml for name in mw.CW10_NAMES}
    listing = oracle.shared().assets(sorted(set(xmls.values())))
    root = Path(listing["root"])
    if ASSETS_DIR.exists():
        shutil.rmtree(ASSETS_DIR)
    for path in listing["files"]:
        (ASSETS_DIR / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / path, ASSETS_DIR / path)
    shutil.copyfile(listing["license"], ASSETS_DIR / "LICENSE")
    (ASSETS_DIR / "SOURCE.md").write_text(source_note(listing, xmls))
    print(f"{len(listing['files'])} files, {sum(listing['sizes'].values()) / 1e6:.1f} MB -> {ASSETS_DIR}")


if __name__ == "__main__":
    main()
