"""`mypy` over services/common, strict, with the configuration in pyproject.toml ([tool.mypy]):
an argument of the wrong type, a value that may be None used as if it were not, a function
whose types are not written. Every module of services/common is checked; none is excepted."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_common_has_no_type_error():
    result = mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


def test_no_module_of_common_is_excepted():
    """Strict means every module: an override that ignores errors would hide one."""
    configuration = (ROOT / "pyproject.toml").read_text()
    assert "ignore_errors" not in configuration


def test_the_checker_reads_the_projects_strict_configuration(tmp_path):
    """An untyped function is an error only under `strict`: the configuration read is the project's."""
    planted = tmp_path / "planted.py"
    planted.write_text("def untyped(x):\n    return x\n")
    result = mypy(str(planted))
    assert result.returncode == 1 and "no-untyped-def" in result.stdout, result.stdout + result.stderr
