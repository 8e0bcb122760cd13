"""Every example of the documentation site runs (docs/examples/, shown on its pages through
snippets, so a page cannot drift from what runs):

* `*.sh` runs in bash (`-euo pipefail`) and `*.py` in this Python, against the five services
  as processes, on a stack of their own whose local providers plant no defects (an example
  shows the same outcome every time it runs): GENLINE_API_URL and GENLINE_API_KEY name the API and a tenant of its own with
  1,000 credits (also in `.genline/demo-api-key` of the scratch folder it runs in, as after
  `make run`), and the operator's environment is set, as `.genline/operator.env` sets it.
  An example exits 0 and checks its own outcome (a state, a signature, a count).
* Examples under `setup/` are the platform's own commands (`make run`, `make docs`): each
  `make` target they name must exist (`make -n`), and tests/test_stack_launcher.py runs them.
* `*.yaml` loads as what its folder says it is: `providers/` a provider registry,
  `templates/` a template catalogue, `k8s/` Kubernetes objects or an overlay (`kustomization.yaml`), rendered and
  validated as the manifests are (tests/deploy/test_manifests.py).
* `*.sql` runs on PostgreSQL in a transaction rolled back afterwards.
* `*.json` is read by the examples that use it (tests/test_docs.py holds each one used).
"""

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from genline_stack.credentials import kek_env
from genline_stack.embedded import EmbeddedStack, Endpoints
from genline_stack.fleet import SERVICES, ServiceFleet
from services.common.templates import Catalogue
from services.router.providers.registry import parse_registry
from tests.deploy.test_manifests import problems_of, render
from tests.e2e.conftest import make_tenant, platform_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
RUNNABLE = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".sh", ".py") and "setup" not in p.parts)
SETUP = sorted((EXAMPLES / "setup").glob("*.sh")) if (EXAMPLES / "setup").is_dir() else []
DOCUMENTS = sorted(EXAMPLES.rglob("*.yaml"))
SHIPPED_REGISTRY = ROOT / "services" / "router" / "providers.yaml"


def name_of(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


def steady_registry(shipped: Path = SHIPPED_REGISTRY) -> dict:
    """The shipped provider registry (this checkout's, or an older release's) with every planted
    defect and failure taken out: its local providers paint what is asked and answer every call,
    so what an example shows does not rest on a draw (an example that shows a failure makes it
    happen on purpose)."""
    registry = yaml.safe_load(shipped.read_text())
    for provider in registry["providers"].values():
        local = provider.get("local")
        if local is not None:
            local.update(defect_rate=0.0, failure_rate=0.0)
            if "portrait" in local:
                local["portrait"] = dict.fromkeys(local["portrait"], 0.0)
    return registry


@pytest.fixture(scope="module")
def steady_platform(tmp_path_factory, stripe, mailbox) -> Iterator[tuple[ServiceFleet, Endpoints]]:
    """The platform on a stack of its own, in the default namespace (the operator's commands
    the examples run read it as they would after `make run`), generating on `steady_registry`."""
    folder = tmp_path_factory.mktemp("steady")
    stack = EmbeddedStack(data_dir=folder / "stack", rotate_after_records=None)
    try:
        endpoints = stack.start()
        (folder / "providers.yaml").write_text(yaml.safe_dump(steady_registry()))
        fleet = ServiceFleet(endpoints=endpoints, log_dir=folder / "logs", extra_env=platform_env(stripe, mailbox)
                             | {"GENLINE_PROVIDERS_PATH": str(folder / "providers.yaml")})
        try:
            fleet.start_all()
            yield fleet, endpoints
        finally:
            fleet.stop_all()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def example_env(steady_platform, tmp_path_factory):
    """The environment an example runs in, and the scratch folder it runs from."""
    platform, endpoints = steady_platform
    tenant = make_tenant(endpoints, platform, 1_000)
    folder = tmp_path_factory.mktemp("docs-example")
    (folder / ".genline").mkdir()
    (folder / ".genline" / "demo-api-key").write_text(tenant.api_key)
    env = os.environ | endpoints.service_env() | kek_env(Path(endpoints.credentials_dir)) | {
        "GENLINE_API_URL": platform.ingest_url, "GENLINE_API_KEY": tenant.api_key,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return env, folder


@pytest.mark.parametrize("example", RUNNABLE, ids=name_of)
def test_the_example_runs_against_the_platform(example, example_env):
    env, folder = example_env
    command = ["bash", "-euo", "pipefail", str(example)] if example.suffix == ".sh" else [sys.executable, str(example)]
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{name_of(example)} exited {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


@pytest.mark.parametrize("example", SETUP, ids=name_of)
def test_the_setup_commands_name_make_targets_that_exist(example):
    targets = [shlex.split(line)[1] for line in example.read_text().splitlines()
               if line.strip().startswith("make ") and len(shlex.split(line)) > 1]
    assert targets, f"{name_of(example)} names no make target"
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


@pytest.mark.parametrize("example", DOCUMENTS, ids=name_of)
def test_the_yaml_example_loads_as_what_it_shows(example, tmp_path):
    kind = example.relative_to(EXAMPLES).parts[0]
    data = yaml.safe_load(example.read_text())
    if kind == "providers":
        parse_registry(data if "providers" in data else {"providers": data}, name_of(example))
    elif kind == "templates":
        Catalogue.model_validate(data)
    elif kind == "k8s":  # an overlay (kustomization.yaml, rendered with its folder) or objects
        objects = render(example.parent) if example.name == "kustomization.yaml" else \
            [obj for obj in yaml.safe_load_all(example.read_text()) if obj]
        problems = [problem for obj in objects for problem in problems_of(obj)]
        assert objects and not problems, "\n".join(problems)
    else:
        pytest.fail(f"{name_of(example)}: no check for YAML under {kind}/ (providers, templates, k8s)")


@pytest.mark.parametrize("example", sorted(EXAMPLES.rglob("*.sql")), ids=name_of)
def test_the_sql_example_runs_on_postgresql_and_makes_what_it_says(example, endpoints):
    """Run in a transaction that is rolled back, its roles renamed so as not to meet the
    ones this stack made, and its database the one it runs in."""
    prefix = f"doc{uuid.uuid4().hex[:6]}_"
    with psycopg.connect(endpoints.database_url) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        statement = example.read_text().replace("genline_", prefix).replace("ON DATABASE genline", f'ON DATABASE "{database}"')
        conn.execute(statement)
        roles = conn.execute("SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname LIKE %s",
                             [prefix + "%"]).fetchall()
        conn.rollback()
    # A role per service that inherits nothing, the auditor's likewise, and the operator's,
    # which acts through the services' roles it is a member of.
    expected = {f"{prefix}{name}": name == "operator" for name in (*SERVICES, "auditor", "operator")}
    assert {name: inherit for name, _, inherit in roles} == expected
    assert all(login for _, login, _ in roles)


def test_every_json_example_is_json():
    for example in EXAMPLES.rglob("*.json"):
        json.loads(example.read_text())


def test_the_api_reference_renders_the_document_ingest_serves(platform):
    """The site's API reference is built from `openapi_document()`: it is the served one."""
    from services.ingest.app import openapi_document

    served = httpx.get(f"{platform.ingest_url}/openapi.json", timeout=30).json()
    assert served == json.loads(json.dumps(openapi_document()))
