"""The layers as a tested contract (pyproject.toml, [tool.importlinter]): each service
imports only services.common and itself, common no service (not even by a name in a
string), the client nothing of the services, the bus sits under the runtime and over the
database, the services reach Kafka only through the bus and the bus only through its public module,
ingest's route modules do not import one another, ingest's kernel imports no feature package and
a feature package is reached only through its face."""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Ingest's feature packages, each kept by a contract of its own (services/ingest/__init__.py).
INGEST_FEATURES = ("members", "subjects", "receipts", "compat", "batches", "evaluations", "admin", "webhooks",
                   "console", "billing", "inputs", "accounts", "jobs")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=source_root, env=os.environ | {"PYTHONPATH": str(source_root)},
                          capture_output=True, text=True, timeout=300)


def test_every_layer_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


def test_a_service_importing_another_breaks_the_contract(tmp_path):
    result = lint_imports(planted(tmp_path, "ingest/jobs/domain.py", "import services.scorer.domain  # refused"))

    assert result.returncode == 1
    assert "services.ingest is not allowed to import services.scorer" in result.stdout
    assert "services.ingest.jobs.domain -> services.scorer.domain" in result.stdout


def planted(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the tree with `line` added to `module` (a path under services/)."""
    shutil.copytree(ROOT / "services", tmp_path / "services", ignore=shutil.ignore_patterns("__pycache__", "_generated"))
    path = tmp_path / "services" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_bus_reaching_up_to_the_runtime_breaks_its_layer(tmp_path):
    result = lint_imports(planted(tmp_path, "common/bus/inbox.py", "import services.common.runtime"))
    assert result.returncode == 1
    assert "services.common.bus.inbox -> services.common.runtime" in result.stdout


def test_a_service_speaking_kafka_itself_breaks_the_contract(tmp_path):
    result = lint_imports(planted(tmp_path, "router/domain.py", "import aiokafka"))
    assert result.returncode == 1
    assert "services.router is not allowed to import aiokafka" in result.stdout


def test_a_service_importing_a_module_of_the_bus_breaks_its_front_door(tmp_path):
    result = lint_imports(planted(tmp_path, "delivery/store.py", "from services.common.bus.outbox import OUTBOX_INSERT"))
    assert result.returncode == 1
    assert "services.delivery.store -> services.common.bus.outbox" in result.stdout


def test_ingest_kernel_importing_a_feature_breaks_the_contract(tmp_path):
    result = lint_imports(planted(tmp_path, "ingest/deps.py", "from services.ingest.members import team"))
    assert result.returncode == 1
    assert "services.ingest.deps is not allowed to import services.ingest.members" in result.stdout


@pytest.mark.parametrize("feature", INGEST_FEATURES)
def test_a_feature_reaching_past_another_features_face_breaks_the_contract(tmp_path, feature):
    result = lint_imports(planted(tmp_path, "ingest/ledger_calls.py", f"from services.ingest.{feature} import routes"))
    assert result.returncode == 1
    assert f"services.ingest.ledger_calls -> services.ingest.{feature}.routes" in result.stdout


@pytest.mark.parametrize(("module", "provider"), [("router/providers/registry.py", "fal.queue"),
                                                  ("router/engine.py", "local.painter"),
                                                  ("router/providers/fal/training.py", "replicate.predictions")],
                         ids=["the shared machinery", "the router", "another provider"])
def test_a_providers_package_imported_from_outside_it_breaks_the_contract(tmp_path, module, provider):
    result = lint_imports(planted(tmp_path, module, f"import services.router.providers.{provider}"))
    assert result.returncode == 1
    importer = "services." + module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> services.router.providers.{provider}" in " ".join(result.stdout.split())


def test_every_ingest_feature_package_has_its_face_contract():
    assert sorted(INGEST_FEATURES) == sorted(contract["id"].removeprefix("ingest-").removesuffix("-face")
                                             for contract in contracts() if contract["id"].endswith("-face"))


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


SERVICE_NAMED = re.compile(r"\bservices\.(ingest|ledger|router|scorer|delivery|stack)\b")


def names_of_services(source: str) -> list[str]:
    """The services a module names in its code's strings (docstrings aside): an import by
    name (importlib, an entry point, a dotted path in a table) the import contract cannot see."""
    tree = parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    return [match.group(0) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for match in SERVICE_NAMED.finditer(node.value)]


def test_common_names_no_service_even_as_a_string():
    named = {str(path.relative_to(ROOT)): found for path in sorted((ROOT / "services" / "common").rglob("*.py"))
             if (found := names_of_services(path.read_text()))}
    data = {str(path.relative_to(ROOT)): SERVICE_NAMED.findall(path.read_text())
            for path in (ROOT / "services" / "common").rglob("*") if path.suffix in (".yaml", ".json", ".sql")}
    assert named == {} and {path: found for path, found in data.items() if found} == {}


def test_a_service_named_in_a_string_is_found():
    planted = '"""Docs may say services.scorer."""\nMEASURES = "services.scorer.dimensions"\nload(f"services.router.{x}")\n'
    assert names_of_services(planted) == ["services.scorer", "services.router"]
