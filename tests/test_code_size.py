"""Small modules with one job each: no file in diffmic/ or app/ over 300 lines, no function over 80
(issue 26).

Lines are counted as a reader meets them (docstrings and comments included); a function runs from its
``def`` (decorators included) to its last line, nested functions counted in their parent too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("diffmic", "app")
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 80


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def long_functions(path: Path, limit: int) -> list[str]:
    """``name (N lines)`` of each function in ``path`` longer than ``limit`` lines."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = node.end_lineno - first + 1
            if lines > limit:
                out.append(f"{node.name} ({lines} lines)")
    return out


def test_the_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in sources()}
    assert {"diffmic/pipeline.py", "app/diagnose.py", "diffmic/data/synthetic/fundus.py"} <= names


def test_a_long_function_is_caught(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (tmp_path / "m.py").write_text(f"@staticmethod\ndef f():\n{body}\n\n\ndef g():\n    return 1\n")
    assert long_functions(tmp_path / "m.py", MAX_FUNCTION_LINES) == ["f (92 lines)"]


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_module_is_small(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_FILE_LINES, f"{lines} lines: split it by what its parts do"
    assert long_functions(path, MAX_FUNCTION_LINES) == []
