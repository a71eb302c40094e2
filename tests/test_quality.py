"""The code stays type-clean (mypy) and free of the lint ruff catches (unused names, likely bugs)."""
import subprocess
import sys

from .conftest import ROOT


def test_mypy_is_clean():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "compiler", "runtime", "cli", "sautikit", "tools",
                             "bench", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
