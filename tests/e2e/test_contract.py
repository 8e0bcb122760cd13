"""The served APIs keep to their own OpenAPI documents: schemathesis reads each document,
generates requests for every operation it lists (valid ones, and invalid ones of every
kind), sends them to the running ingest and ledger, and fails on any 5xx, any status,
header or body the document does not declare, and any error that is not an RFC 9457
problem (tests/e2e/contract_checks.py). A route added later is covered once it is served."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LEDGER_ADMIN_TOKEN, make_tenant

pytestmark = pytest.mark.contract
ROOT = Path(__file__).resolve().parents[2]

# Bounded by cases, not by a time budget (schemathesis spends one by repeating its phases,
# and splits it unevenly between operations). 25 fuzzed cases per operation come on top of
# the examples and of the coverage phase, which sends every boundary and every kind of
# invalid value the document allows (350 cases for POST /v1/jobs alone): together still the
# run's largest single test, about a minute and a half for ingest on a two-core machine.
# GENLINE_CONTRACT_CASES raises the count for a deeper run (300: several hundred cases per
# operation).
CASES_PER_OPERATION = int(os.environ.get("GENLINE_CONTRACT_CASES", "25"))
# An operation whose only input is the ids in its path (no body, no query) has little to
# fuzz: an id is found, not found or malformed, and the coverage phase sends the malformed
# kinds already. A fifth of the cases asks it the same questions.
ID_ONLY_CASES = max(1, CASES_PER_OPERATION // 5)


def id_only_operations(document: dict) -> list[str]:
    return [name for name, operation in operations(document)
            if "requestBody" not in operation and all(p["in"] == "path" for p in operation.get("parameters", ()))
            and operation.get("parameters")]


def write_config(base_url: str, report_dir) -> Path:
    """Cases per operation, as schemathesis.toml says them: fewer for id-only operations."""
    id_only = id_only_operations(httpx.get(f"{base_url}/openapi.json", timeout=10).json())
    config = report_dir / "schemathesis.toml"
    config.write_text(f"generation.max-examples = {CASES_PER_OPERATION}\n" + (
        f"[[operations]]\ninclude-name = {json.dumps(id_only)}\ngeneration.max-examples = {ID_ONLY_CASES}\n"
        if id_only else ""))
    return config


def schemathesis_run(base_url: str, token: str, report_dir) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file", str(write_config(base_url, report_dir)), "run",
        f"{base_url}/openapi.json", "--checks", "all",
        # Valid by the schema is not always acceptable: cross-field rules (candidates >= images,
        # known dimension names, width with height) are checked by the service and answered 422.
        "--exclude-checks", "positive_data_acceptance",
        # A stream answers for as long as its job (a tenant's, for ever): tests/e2e/test_job_events.py
        # checks the streams' statuses and problems instead.
        "--exclude-path-regex", "/stream$",
        "--phases", "examples,coverage,fuzzing", "--seed", "10",
        "--workers", "1", "--request-timeout", "10", "-H", f"Authorization: Bearer {token}",
        "--report", "ndjson", "--report-ndjson-path", str(report_dir / "events.ndjson"),
    ]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.e2e.contract_checks", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    # Run from the report folder: schemathesis keeps a cache in its working directory.
    return subprocess.run(command, env=env, cwd=report_dir, capture_output=True, text=True)


def assert_kept(run: subprocess.CompletedProcess, report_dir) -> None:
    assert run.returncode == 0, f"schemathesis found contract violations:\n{run.stdout[-12000:]}\n{run.stderr[-3000:]}"
    assert "errors_are_problems" in (report_dir / "events.ndjson").read_text()  # our check ran too


def test_ingest_keeps_its_contract(endpoints, platform, tmp_path):
    # A tenant without credits: its generated jobs are rejected at admission, nothing is generated.
    tenant = make_tenant(endpoints, platform, credits=0)
    tenant.http.close()
    assert_kept(schemathesis_run(platform.ingest_url, tenant.api_key, tmp_path), tmp_path)


def test_ledger_keeps_its_contract(platform, tmp_path):
    assert_kept(schemathesis_run(platform.url("ledger"), LEDGER_ADMIN_TOKEN, tmp_path), tmp_path)


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


@pytest.mark.parametrize("service", ["ingest", "ledger"])
def test_every_operation_is_documented_for_a_client_generator(platform, service):
    """What a generated client needs beyond conformance: readable ids, an example to start
    from, and only problems for errors."""
    document = httpx.get(f"{platform.url(service)}/openapi.json").json()
    assert document["info"]["description"] and document["info"]["contact"] and document["tags"]
    schemas = document["components"]["schemas"]
    for name, operation in operations(document):
        assert re.fullmatch(r"[a-z][a-z_]+", operation["operationId"]), name
        text = json.dumps(operation)
        referenced = re.findall(r"#/components/schemas/(\w+)", text)
        assert "example" in text or any("examples" in schemas[r] for r in referenced if r != "Problem"), name
        shape = ("application/json", "OpenAIErrorResponse") if "openai" in operation.get("tags", ()) else (
            "application/problem+json", "Problem")
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                if shape[1] == "OpenAIErrorResponse":
                    assert response["content"] == {shape[0]: {"schema": {
                        "$ref": f"#/components/schemas/{shape[1]}"}}}, (name, status)
                    continue
                assert list(response["content"]) == ["application/problem+json"], (name, status)
                declared = response["content"]["application/problem+json"]
                assert declared["schema"] == {"$ref": "#/components/schemas/Problem"}, (name, status)
                assert set(declared) <= {"schema", "examples"}, (name, status)
                for example in declared.get("examples", {}).values():  # problems shown by example, one per type
                    assert example["value"]["status"] == int(status), (name, status)
                    assert example["value"]["type"].startswith("/problems/"), (name, status)
