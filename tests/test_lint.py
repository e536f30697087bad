"""The code style is enforced: ruff lint and ruff format (configuration in pyproject.toml).

ruff is run through the interpreter running the tests (``python -m ruff``), so the suite finds it in the
environment it runs in, whether or not that environment is activated (on PATH)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    assert importlib.util.find_spec("ruff"), (
        f"ruff is missing from {sys.executable}: pip install -r requirements-dev.txt"
    )
    res = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
