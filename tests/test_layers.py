"""The layers as a tested contract (pyproject.toml, [tool.importlinter]): each service
imports only services.common and itself, common no service, the client nothing of the
services, and ingest's route modules not one another."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=source_root, env=os.environ | {"PYTHONPATH": str(source_root)},
                          capture_output=True, text=True, timeout=300)


def test_every_layer_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_a_service_importing_another_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "services", tmp_path / "services", ignore=shutil.ignore_patterns("__pycache__", "_generated"))
    domain = tmp_path / "services" / "ingest" / "domain.py"
    domain.write_text(domain.read_text() + "\nimport services.scorer.domain  # the import the contract refuses\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1
    assert "services.ingest is not allowed to import services.scorer" in result.stdout
    assert "services.ingest.domain -> services.scorer.domain" in result.stdout
