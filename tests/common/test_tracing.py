"""Spans leave a service only over OTLP and only where GENLINE_OTLP_ENDPOINT is set; its
PostgreSQL queries and S3 calls are spans of the trace being continued."""

import http.server
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.common.tracing import continued

ROOT = Path(__file__).resolve().parents[2]
# One unit of work in a fresh process, traced as a service traces it: a continued trace,
# an async PostgreSQL query and an S3 call through the object store, then a flush.
PROBE = """
import asyncio, sys
import psycopg
from opentelemetry import trace
from services.common.settings import ServiceSettings
from services.common.storage import ObjectStore
from services.common.tracing import configure_tracing, continued

async def work(settings):
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value()) as conn:
        await conn.execute("SELECT 1")
    await ObjectStore(settings).ping()

settings = ServiceSettings()
configure_tracing("probe", settings.otlp_endpoint)
with continued(sys.argv[1], "probe work"):
    asyncio.run(work(settings))
trace.get_tracer_provider().force_flush()
"""


class Collector(http.server.BaseHTTPRequestHandler):
    requests: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        self.requests.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def collector():
    Collector.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_probe(endpoints, trace_id: str, **env: str) -> None:
    environment = os.environ | endpoints.service_env() | {"PYTHONPATH": str(ROOT)} | env
    result = subprocess.run([sys.executable, "-c", PROBE, f"00-{trace_id}-{secrets.token_hex(8)}-01"],
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def exported_spans() -> list:
    spans = []
    for path, body in Collector.requests:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            spans += [(service, span) for scope in resource.scope_spans for span in scope.spans]
    return spans


def test_with_an_endpoint_database_and_s3_calls_are_exported_in_the_continued_trace(endpoints, collector):
    trace_id = secrets.token_hex(16)
    run_probe(endpoints, trace_id, GENLINE_OTLP_ENDPOINT=collector)
    spans = exported_spans()
    assert {service for service, _ in spans} == {"genline-probe"}
    assert {span.trace_id.hex() for _, span in spans} == {trace_id}
    attributes = [{a.key: a.value.string_value for a in span.attributes} for _, span in spans]
    assert any(a.get("db.system") == "postgresql" or a.get("db.system.name") == "postgresql" for a in attributes)
    assert any(a.get("rpc.service") == "S3" for a in attributes)


def test_opentelemetrys_own_variables_are_honoured(endpoints, collector):
    trace_id = secrets.token_hex(16)
    run_probe(endpoints, trace_id, OTEL_EXPORTER_OTLP_ENDPOINT=collector, OTEL_SERVICE_NAME="probe-by-otel")
    assert {service for service, _ in exported_spans()} == {"probe-by-otel"}
    assert {span.trace_id.hex() for _, span in exported_spans()} == {trace_id}
    Collector.requests = []
    run_probe(endpoints, secrets.token_hex(16), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector}/v1/traces")
    assert exported_spans()


@pytest.mark.parametrize("off", [{}, {"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_without_an_endpoint_or_with_the_sdk_disabled_nothing_is_exported(endpoints, collector, off):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector} | off if off else {}
    run_probe(endpoints, secrets.token_hex(16), **env)
    assert Collector.requests == []


def test_an_internal_http_call_carries_its_service_token_and_the_current_trace():
    """What ServiceAuth adds to a request (the header, not a server: pure logic)."""
    import httpx

    from services.common.identity import ServiceSigner, new_service_key
    from services.common.internal_calls import ServiceAuth

    seen = []
    transport = httpx.MockTransport(lambda request: seen.append(request.headers) or httpx.Response(200))
    trace_id = secrets.token_hex(16)
    with httpx.Client(transport=transport, auth=ServiceAuth(ServiceSigner("ingest", new_service_key()[0]), "scorer")) as client, \
            continued(f"00-{trace_id}-{secrets.token_hex(8)}-01", "a call"):
        client.get("http://scorer/internal/v1/calibration")
    assert seen[0]["authorization"].startswith("Bearer ")
    assert seen[0]["traceparent"].split("-")[1] == trace_id
