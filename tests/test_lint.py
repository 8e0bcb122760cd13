"""`ruff check` over every Python file of the repository, with the rules pyproject.toml
selects: pyflakes (an undefined name, an unused import), pycodestyle, import order,
bugbear (a closure that keeps a loop's last value, a blind `raises(Exception)`),
comprehensions and pyupgrade. Each finding is a defect or a drift a run may not reach
before a reader does."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_has_no_ruff_finding():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "services", "genline_cli", "genline_stack", "tests", "bench", "clients"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_reads_the_projects_rules(tmp_path):
    """A closure over a loop variable is found: the rule set is the project's, not ruff's default."""
    planted = ROOT / "tests" / f"_planted_{tmp_path.name}.py"
    planted.write_text("def later():\n    return [lambda: i for i in range(3)]\n")
    try:
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                                 str(planted)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        planted.unlink()
    assert result.returncode == 1 and "B023" in result.stdout, result.stdout + result.stderr
