"""What operators see of one job: one trace id in the logs of all five services, and the
metrics every service exports (and that the dashboard and the alert rules query); and which
release each service runs and writes its events for, in its /healthz and its metrics."""

import json
import re
import secrets
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from genline_stack.fleet import SERVICES
from services.common.contracts import topic_of
from services.common.releases import RELEASE
from tests.e2e.conftest import make_tenant
from tests.metrics import metric_value

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy/k8s/monitoring"
# Queried by the rules, exported by others: Prometheus itself and a Kafka exporter.
EXTERNAL_METRICS = {"up", "kafka_consumergroup_lag"}


def log_lines(platform, service: str) -> list[dict]:
    lines = (platform.log_dir / f"{service}.log").read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def traced_job(endpoints, platform):
    """One job submitted with the caller's own trace context and request id."""
    tenant = make_tenant(endpoints, platform, credits=1_000)
    trace_id, request_id = secrets.token_hex(16), f"req-{secrets.token_hex(6)}"
    response = tenant.http.post("/v1/jobs", json={"prompt": "a lighthouse at dusk", "images": 1, "candidates": 2},
                                headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                                         "X-Request-ID": request_id})
    assert response.status_code == 202, response.text
    job = tenant.wait_settled([response.json()["id"]])[response.json()["id"]]
    yield {"tenant": tenant, "job": job, "trace_id": trace_id, "request_id": request_id, "response": response}
    tenant.http.close()


def test_one_trace_id_is_in_the_logs_of_all_five_services(traced_job, platform):
    job, trace_id = traced_job["job"], traced_job["trace_id"]
    assert job["state"] == "succeeded"
    for service in SERVICES:
        mine = [line for line in log_lines(platform, service) if line.get("trace_id") == trace_id]
        assert mine, f"{service} logged nothing with trace id {trace_id}"
        assert all(line.get("job_id") in (None, job["id"]) for line in mine), service
        assert any(line.get("job_id") == job["id"] and line.get("tenant_id") == traced_job["tenant"].id
                   for line in mine), service


def test_the_access_log_names_the_request_its_trace_and_tenant(traced_job, platform):
    assert traced_job["response"].headers["x-request-id"] == traced_job["request_id"]
    access = [line for line in log_lines(platform, "ingest")
              if line.get("logger") == "genline.access" and line.get("request_id") == traced_job["request_id"]]
    assert len(access) == 1
    assert access[0] | {"method": "POST", "route": "/v1/jobs", "status": 202,
                        "trace_id": traced_job["trace_id"]} == access[0]
    assert access[0]["duration_ms"] >= 0


def test_a_malformed_request_id_is_replaced_not_echoed(platform):
    response = httpx.get(f"{platform.ingest_url}/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_every_service_says_its_release_and_the_release_it_writes_its_events_for(platform):
    for service in SERVICES:
        health = httpx.get(f"{platform.url(service)}/healthz").json()
        assert health == {"status": "ok", "service": service, "version": RELEASE, "events_compatible_with": RELEASE}
        assert metric_value(platform.url(service), "genline_build_info", service=service, version=RELEASE,
                            events_compatible_with=RELEASE) == 1


def test_a_job_shows_on_every_service_metrics(traced_job, platform):
    job, ingest, ledger = traced_job["job"], platform.url("ingest"), platform.url("ledger")
    assert metric_value(ingest, "genline_http_requests_total", service="ingest", method="POST",
                        route="/v1/jobs", status="202") >= 1
    consumed = {"ledger": "ingest", "router": "ledger", "scorer": "router", "delivery": "scorer", "ingest": "ledger"}
    for service, publisher in consumed.items():
        assert metric_value(platform.url(service), "genline_queue_seconds_count", topic=topic_of(publisher)) >= 1
        assert metric_value(platform.url(service), "genline_stage_seconds_count") >= 1, service
        assert metric_value(platform.url(service), "genline_outbox_relayed_total") >= 1, service
        assert metric_value(platform.url(service), "genline_bus_fetches_total", service=service, brought="yes") >= 1
    assert metric_value(ledger, "genline_credits_total", operation="reserved") >= job["billing"]["reserved"]
    assert metric_value(ledger, "genline_credits_total", operation="charged") >= job["billing"]["charged"] > 0
    public = metric_value(platform.url("delivery"), "genline_storage_bytes_total", bucket="genline-public")
    assert public >= job["outputs"][0]["size_bytes"] > 0
    assert metric_value(platform.url("router"), "genline_router_provider_cost_usd_total") > 0
    assert metric_value(platform.url("router"), "genline_router_spend_alert_usd_per_hour") > 0


def test_grpc_calls_are_counted_by_method_and_code(traced_job, platform):
    ledger, method = platform.url("ledger"), "/genline.ledger.v1.LedgerService/GetBalance"
    before = metric_value(ledger, "genline_grpc_requests_total", method=method, code="OK")
    assert traced_job["tenant"].http.get("/v1/account").status_code == 200
    assert metric_value(ledger, "genline_grpc_requests_total", method=method, code="OK") == before + 1


def queried_metrics() -> dict[str, set[str]]:
    """Metric names in every PromQL expression of the dashboard and of the alert rules."""
    dashboard = json.loads((MONITORING / "dashboards/genline.json").read_text())
    exprs = {f"panel {p['title']!r}": [t["expr"] for t in p["targets"]]
             for p in dashboard["panels"] if p["type"] != "row"}
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]["groups"]
    exprs |= {f"rule {r['alert']}": [r["expr"]] for g in rules for r in g["rules"]}
    pattern = re.compile(r"\b(genline_\w+|kafka_\w+|up)\s*[{\[)]")
    return {where: {m for e in es for m in pattern.findall(e)} for where, es in exprs.items()}


def family_of(sample_name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", sample_name)


def test_every_metric_a_panel_or_rule_queries_is_exported_by_a_service(platform):
    exported = set()
    for service in SERVICES:
        text = httpx.get(f"{platform.url(service)}/metrics", timeout=5).text
        exported |= {family.name for family in text_string_to_metric_families(text)}
    for where, names in queried_metrics().items():
        assert names, f"{where} queries no metric"
        missing = {n for n in names - EXTERNAL_METRICS if family_of(n) not in exported}
        assert not missing, f"{where} queries {missing}, which no service exports"
