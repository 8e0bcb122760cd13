"""Pyflakes' checks (ruff's F rules) over every Python file of the repository: an undefined
name, an unused import or variable, a repeated dictionary key, an f-string without a field.
Each is a defect a run may not reach before a user does."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_has_no_pyflakes_finding():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--no-cache",
                             "--output-format", "concise", "services", "tests", "bench", "clients"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
