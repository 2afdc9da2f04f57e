"""The code's shape (issue 18): no function in purejaxsphere/ or envs/ runs longer than MAX_LINES, from its `def`
line to its last line, docstring and comments included."""

import ast
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 60
# Functions allowed to be longer because they are data tables, as "path:name". Empty: there are none.
ALLOWED: frozenset[str] = frozenset()


def long_functions(root: Path, max_lines: int = MAX_LINES) -> dict[str, int]:
    """{"path:name": lines} of every function or method under `root` (paths relative to it) over `max_lines`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > max_lines:
                    out[f"{path.relative_to(root).as_posix()}:{node.name}"] = lines
    return out


def test_the_counter_finds_a_long_method_and_passes_a_short_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))  # with its def line: MAX_LINES lines
    method = textwrap.indent(f"def over(self):\n{body}\n    return x0\n", "    ")
    (tmp_path / "m.py").write_text(f"def fits():\n{body}\n\n\nclass C:\n{method}")
    assert long_functions(tmp_path) == {"m.py:over": MAX_LINES + 1}


def test_no_function_is_longer_than_max_lines():
    found = {f"{package}/{name}": n for package in ("purejaxsphere", "envs")
             for name, n in long_functions(REPO / package).items()}
    assert {name: n for name, n in found.items() if name not in ALLOWED} == {}, "split into small named functions"
