"""docs/architecture.md matches the tree: it names every file, names no missing one, and the import rules it states
hold in the code (imports read with `ast`, including imports inside functions and under TYPE_CHECKING).

A file counts as named when its path (`envs/core.py`) appears in backticks, or its file name (`core.py`) appears in
backticks on a table row whose first cell is its directory in backticks (`envs/`). Also: every relative link in
README.md and docs/*.md resolves, and docs/bench/ holds only JSON files a doc links (older ones live in git history).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("purejaxsphere", "envs")


def doc_text() -> str:
    return DOC.read_text()


def backticked(line: str) -> list[str]:
    return re.findall(r"`([^`]+)`", line)


def named_files(text: str) -> set[str]:
    """Repository paths the doc names: backticked paths, and file names on a line with their backticked directory."""
    named: set[str] = set()
    for line in text.splitlines():
        tokens = backticked(line)
        first_cell = line.split("|")[1] if line.startswith("|") else ""
        directories = [t for t in backticked(first_cell) if t.endswith("/")]
        for token in tokens:
            if "/" in token and not token.endswith("/"):
                named.add(token)
            elif "/" not in token:
                named.update(directory + token for directory in directories)
    return named


def tree_files() -> list[str]:
    """What the doc must name: the .py files of the code and test trees, every file in scripts/, the configs."""
    files = {p for top in (*PACKAGES, "scripts", "tests") for p in (ROOT / top).rglob("*.py")}
    files |= {p for p in (ROOT / "scripts").iterdir() if p.is_file()}
    files |= set((ROOT / "configs").rglob("*.yaml"))
    return sorted(p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts)


def test_rule_reads_paths_and_names_on_directory_rows():
    text = ("| `envs/core.py` | x |\n| `envs/metaworld/` | `base.py`, `model.py`, `assets/` |\n"
            "`cpu.py` alone, `tests/` then `faults.py`\n| `scripts/` | `mw-oracle` |\n")
    assert named_files(text) == {"envs/core.py", "envs/metaworld/base.py", "envs/metaworld/model.py",
                                 "scripts/mw-oracle"}


@pytest.mark.parametrize("path", tree_files())
def test_every_file_is_named(path):
    assert path in named_files(doc_text()), f"{path} is not named in docs/architecture.md: add it to its table"


def test_every_named_python_or_config_path_exists():
    """A backticked path (or a file name on a directory row) ending in .py / .yaml must be a file of the tree."""
    missing = sorted(p for p in named_files(doc_text())
                     if p.endswith((".py", ".yaml")) and "<" not in p and not (ROOT / p).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_relative_links_resolve():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_docs_bench_holds_only_linked_json():
    """docs/bench/ keeps the JSON a doc links; an older file is cited as `file at commit`, not kept in the tree."""
    text = "".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    linked = set(re.findall(r"\]\((?:docs/)?bench/([^)\s#]+)\)", text))
    unlinked = sorted(p.name for p in (ROOT / "docs" / "bench").glob("*.json") if p.name not in linked)
    assert not unlinked, f"docs/bench files no doc links (git rm them; cite their commit instead): {unlinked}"


# ---- imports ----------------------------------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reexport_source(package: str, name: str) -> str | None:
    """Where `package/__init__.py` imports `name` from (`from purejaxsphere import make_train` -> driver)."""
    init = module_path(package)
    if init is None or init.name != "__init__.py":
        return None
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
            return node.module
    return None


def imports_of(path: Path) -> set[str]:
    """The modules a file imports; `from pkg import x` is the module pkg.x, or where pkg re-exports x from."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                if module_path(f"{base}.{alias.name}") is not None:
                    found.add(f"{base}.{alias.name}")
                else:
                    found.add(reexport_source(base, alias.name) or base)
    return found


def project_imports(path: Path) -> set[str]:
    return {m for m in imports_of(path) if m.split(".")[0] in (*PACKAGES, "scripts", "tests")}


def code_files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def layers() -> dict[str, int]:
    """The layer table of docs/architecture.md ("Import rules"): module -> rank, bottom first."""
    section = doc_text().split("## Import rules", 1)[1].split("\n## ", 1)[0]
    rank: dict[str, int] = {}
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    for index, row in enumerate(rows):
        for name in backticked(row.split("|")[2]):
            module = name.removesuffix(".py")
            rank["purejaxsphere" if module == "__init__" else f"purejaxsphere.{module}"] = index
    return rank


def test_layer_table_covers_every_module():
    modules = {module_name(p) for p in code_files("purejaxsphere")}
    assert set(layers()) == modules


@pytest.mark.parametrize("path", code_files("purejaxsphere"), ids=lambda p: p.name)
def test_purejaxsphere_imports_only_its_own_or_lower_layers(path):
    rank = layers()
    own = module_name(path)
    above = sorted(m for m in project_imports(path) if m.startswith("purejaxsphere") and rank[m] > rank[own])
    outside = sorted(m for m in project_imports(path) if m.split(".")[0] in ("scripts", "tests"))
    assert not above, f"{own} (layer {rank[own]}) imports a higher layer: {[(m, rank[m]) for m in above]}"
    assert not outside, f"{own} imports {outside}"


def test_model_and_records_layers_and_config_stay_off_the_tasks():
    rank = layers()
    allowed_for_config = {"envs.registry", "envs.warp"}
    for path in code_files("purejaxsphere"):
        own = module_name(path)
        tasks = {m for m in project_imports(path) if m.split(".")[0] == "envs"}
        if own == "purejaxsphere.config":
            assert tasks <= allowed_for_config, tasks
        elif rank[own] < rank["purejaxsphere.programs"]:
            assert not tasks, f"{own} imports {tasks}"


@pytest.mark.parametrize("path", code_files("envs"), ids=lambda p: p.relative_to(ROOT / "envs").as_posix())
def test_envs_never_import_the_trainer_scripts_or_tests(path):
    bad = sorted(m for m in project_imports(path) if m.split(".")[0] in ("purejaxsphere", "scripts", "tests"))
    assert not bad, f"{module_name(path)} imports {bad}"


def test_envs_directions():
    for path in code_files("envs"):
        own, imported = module_name(path), project_imports(path)
        if own == "envs.core":
            assert not {m for m in imported if m.startswith("envs")}, imported
        suite = own.split(".")[1] if own.count(".") else ""
        if own in ("envs.brax_tasks", "envs.testing") or suite in ("humanoidbench", "metaworld"):
            assert "envs.registry" not in imported, own
        if suite in ("humanoidbench", "metaworld"):
            other = "metaworld" if suite == "humanoidbench" else "humanoidbench"
            assert not {m for m in imported if m.startswith(f"envs.{other}")}, own
    server = ROOT / "envs" / "metaworld" / "oracle_server.py"
    assert not project_imports(server), "oracle_server.py runs in mw-oracle's environment, without the project"


def test_import_reader_resolves_reexports_and_submodules():
    """The reader sees `from purejaxsphere import sphere` as the submodule and `make_train` as the driver's."""
    assert "purejaxsphere.sphere" in imports_of(ROOT / "purejaxsphere" / "ppo.py")
    assert reexport_source("purejaxsphere", "make_train") == "purejaxsphere.driver"
    assert reexport_source("envs", "make") == "envs.registry"
