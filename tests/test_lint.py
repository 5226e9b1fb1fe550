"""``ruff check --select F`` (pyflakes: unused imports and names, undefined names, redefinitions) finds nothing.

ruff comes with requirements-dev.txt, so CI always runs this; where it is not
installed the test is skipped with a sentence saying so.
"""

import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

PATHS = ["vitrep", "dashboard", "app_pages", "benchmarks", "tests", "app.py"]


def _ruff() -> list[str] | None:
    """How to run ruff here: the venv's module, else one on PATH, else None."""
    probe = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


def test_pyflakes_rules_find_nothing():
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements-dev.txt installs it); the F-rule check "
                    "did not run")
    p = subprocess.run(ruff + ["check", "--select", "F", "--no-cache", "--output-format", "concise", *PATHS],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
