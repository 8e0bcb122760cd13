"""`mypy` over services/ and genline_stack, strict, with the configuration in pyproject.toml
([tool.mypy]): an argument of the wrong type, a value that may be None used as if it were not,
a function whose types are not written. Every module of every service and of the embedded
stack is checked; none is excepted."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_services_and_the_stack_have_no_type_error():
    result = mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


def test_every_service_and_the_stack_are_checked():
    """What [tool.mypy] lists is what the checker reads: all of services/ and genline_stack."""
    configuration = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert sorted(configuration["files"]) == ["genline_stack", "services"]


def test_no_module_is_excepted():
    """Strict means every module: an override that ignores errors would hide one."""
    configuration = (ROOT / "pyproject.toml").read_text()
    assert "ignore_errors" not in configuration


def test_the_checker_reads_the_projects_strict_configuration(tmp_path):
    """An untyped function is an error only under `strict`: the configuration read is the project's."""
    planted = tmp_path / "planted.py"
    planted.write_text("def untyped(x):\n    return x\n")
    result = mypy(str(planted))
    assert result.returncode == 1 and "no-untyped-def" in result.stdout, result.stdout + result.stderr
