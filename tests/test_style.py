"""The code base stays ruff-clean (lint and format), checked with the rest of the suite."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_unsafe_calls_in_package():
    """No pickle, eval or exec anywhere in nettrain: nothing loaded may run code."""
    for path in (ROOT / "nettrain").rglob("*.py"):
        text = path.read_text()
        for word in ("import pickle", "eval(", "exec(", "allow_pickle=True"):
            assert word not in text, f"{path}: {word}"
