"""Every `purejaxsphere train` command in README.md and docs/*.md passes `--dry-run` (the config composes and
validates, the tasks build, the plan prints), so no documented command can drift from the code. Commands come from
code blocks and inline code; `runs/<...>` placeholders (a run to resume) name a run directory made here, and a
bare `<...>` placeholder (e.g. `<overrides>`) stands for no override."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from purejaxsphere import load_config
from purejaxsphere.cli import main
from purejaxsphere.config import to_dict

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDER_RUN = "runs/documented-run"


def code_lines(text: str) -> list[str]:
    """Lines of fenced code blocks (backslash continuations joined) and inline code spans."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    return lines + re.findall(r"`([^`\n]+)`", prose)


def train_commands(text: str) -> list[str]:
    """The `purejaxsphere train ...` commands of a document, comments dropped, as written."""
    found = []
    for line in code_lines(text):
        start = line.find("purejaxsphere train")
        if start >= 0:
            found.append(" ".join(shlex.split(line[start:], comments=True)))
    return found


def train_arguments(command: str) -> list[str]:
    """The arguments after `purejaxsphere train`, placeholders filled in."""
    command = re.sub(r"<[^>]*>", "", re.sub(r"runs/<[^>]*>", PLACEHOLDER_RUN, command))
    return shlex.split(command)[2:]


COMMANDS = sorted({(doc.relative_to(REPO).as_posix(), command)
                   for doc in DOCS for command in train_commands(doc.read_text())})


def test_the_documents_have_train_commands():
    assert len(COMMANDS) >= 10 and any(command == "purejaxsphere train" for _, command in COMMANDS)


def test_train_commands_extracted_as_written():
    text = "x `purejaxsphere train a=1` y\n```bash\npurejaxsphere train b=2 \\\n  c=3   # note\nls\n```\n"
    assert train_commands(text) == ["purejaxsphere train b=2 c=3", "purejaxsphere train a=1"]
    assert train_arguments("purejaxsphere train resume=runs/<that run> <overrides>") == [f"resume={PLACEHOLDER_RUN}"]


@pytest.fixture
def user_directory(tmp_path, monkeypatch):
    """An empty working directory holding one finished-looking run (its config.yaml) for the resume commands."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / PLACEHOLDER_RUN
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(load_config()), sort_keys=False))
    return tmp_path


@pytest.mark.parametrize("doc,command", COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_documented_train_command_passes_dry_run(doc, command, user_directory, capsys):
    before = sorted(path.relative_to(user_directory) for path in user_directory.rglob("*"))
    code = main(["train", *train_arguments(command), "--dry-run"])
    out = capsys.readouterr()
    assert code == 0, f"{doc}: `{command} --dry-run` exited {code}: {out.err}"
    assert "dry run" in out.out and "chunks" in out.out and "run dir" in out.out
    after = sorted(path.relative_to(user_directory) for path in user_directory.rglob("*"))
    assert after == before  # a dry run writes nothing
