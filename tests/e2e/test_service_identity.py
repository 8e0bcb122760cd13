"""Every internal endpoint and gRPC method of the running services proves its caller
(services/common/identity.py): no credential, a forged or expired one, or one made for
another service is 401 / UNAUTHENTICATED; a proven service with no business there is 403 /
PERMISSION_DENIED; the service that has business there is answered. Health checks and
probes answer anyone (the kubelet carries no token)."""

import asyncio
import json
import time
import uuid

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genline_stack.embedded import create_topics
from services.common.contracts import all_topics
from services.common.identity import INTERNAL_SERVICES, MAY_CALL, ServiceSigner, new_service_key
from services.ledger.grpc import pb as ledger_pb
from services.ledger.grpc import rpc as ledger_rpc
from services.router.grpc import pb as router_pb
from services.router.grpc import rpc as router_rpc
from tests.identity import headers_as

TENANT = f"t-{uuid.uuid4().hex[:8]}"
ENDPOINT, JOB, ATTEMPT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
# Every internal HTTP route: (service, capability, method, path).
def anonymous(path: str) -> str:
    """The path with its random ids named, so that every worker of the suite collects the same test ids."""
    return path.replace(TENANT, "{tenant}").replace(str(ENDPOINT), "{endpoint}").replace(str(JOB), "{job}") \
        .replace(str(ATTEMPT), "{attempt}")


HTTP_ROUTES = [
    ("ingest", "data-keys", "GET", f"/internal/v1/jobs/{JOB}/data-key"),
    ("scorer", "measurements", "POST", "/internal/v1/measurements?dimensions=sharpness"),
    ("scorer", "calibration", "POST", "/internal/v1/calibration"),
    *[("delivery", "webhooks", method, f"/internal/v1/tenants/{TENANT}{path}") for method, path in [
        ("POST", "/webhook-endpoints"), ("GET", "/webhook-endpoints"),
        ("GET", f"/webhook-endpoints/{ENDPOINT}"), ("PATCH", f"/webhook-endpoints/{ENDPOINT}"),
        ("DELETE", f"/webhook-endpoints/{ENDPOINT}"), ("POST", f"/webhook-endpoints/{ENDPOINT}/rotate-secret"),
        ("GET", f"/webhook-endpoints/{ENDPOINT}/attempts"), ("GET", f"/jobs/{JOB}/webhook-attempts"),
        ("POST", f"/webhook-attempts/{ATTEMPT}/redeliver"), ("GET", "/webhook-secret")]],
]
GRPC_METHODS = [
    ("ledger", ledger_rpc.LedgerServiceStub, "GetBalance", ledger_pb.GetBalanceRequest(tenant_id=TENANT)),
    ("ledger", ledger_rpc.LedgerServiceStub, "Quote", ledger_pb.QuoteRequest(tenant_id=TENANT)),
    ("ledger", ledger_rpc.LedgerServiceStub, "ListEntries", ledger_pb.ListEntriesRequest(tenant_id=TENANT)),
    ("router", router_rpc.RouterServiceStub, "ListProviders", router_pb.ListProvidersRequest()),
]


def allowed(service: str, capability: str) -> str:
    return sorted(MAY_CALL[service][capability])[0]


def not_allowed(service: str, capability: str) -> str:
    return next(s for s in INTERNAL_SERVICES if s not in MAY_CALL[service][capability])


def where(platform, service: str) -> str:
    return platform.admin_url(service) if service == "ingest" else platform.url(service)


def call(platform, service: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"content": b"\x89PNG"} if "measurements" in path else {"json": {}}
    return httpx.request(method, where(platform, service) + path, headers=headers, timeout=30, **body)


def elsewhere(service: str) -> str:
    return next(s for s in INTERNAL_SERVICES if s != service)


def forged(audience: str) -> dict[str, str]:
    """A token that names ingest, signed with a key ingest does not hold."""
    signer = ServiceSigner("ingest", new_service_key()[0])
    return {"Authorization": signer.authorization(audience)}


@pytest.mark.parametrize("service, capability, method, path", HTTP_ROUTES,
                         ids=[f"{s}:{m} {anonymous(p.split('?')[0])}" for s, _, m, p in HTTP_ROUTES])
def test_each_internal_route_answers_only_the_service_with_business_there(platform, endpoints, service, capability,
                                                                          method, path):
    outsider, caller = not_allowed(service, capability), allowed(service, capability)

    anonymous = call(platform, service, method, path, {})
    garbage = call(platform, service, method, path, {"Authorization": "Bearer e30.c2ln"})
    forgery = call(platform, service, method, path, forged(service))
    misaddressed = call(platform, service, method, path, headers_as(endpoints, caller, elsewhere(service)))
    other = call(platform, service, method, path, headers_as(endpoints, outsider, service))
    answered = call(platform, service, method, path, headers_as(endpoints, caller, service))

    assert [r.status_code for r in (anonymous, garbage, forgery, misaddressed, other)] == [401, 401, 401, 401, 403]
    for refused in (anonymous, other):
        assert refused.headers["content-type"] == "application/problem+json", refused.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert answered.status_code not in (401, 403), answered.text


def test_an_expired_token_is_refused(platform, endpoints, monkeypatch):
    signer = endpoints.signer("ingest")
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    stale = {"Authorization": signer.authorization("delivery")}
    monkeypatch.undo()
    response = call(platform, "delivery", "GET", f"/internal/v1/tenants/{TENANT}/webhook-secret", stale)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def grpc_code(target: str, stub_class, method: str, request, metadata) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        try:
            getattr(stub_class(channel), method)(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service, stub_class, method, request_", GRPC_METHODS, ids=[m for _, _, m, _ in GRPC_METHODS])
def test_each_grpc_method_answers_only_the_service_with_business_there(platform, endpoints, service, stub_class,
                                                                       method, request_):
    target = f"127.0.0.1:{platform.ledger_grpc_port if service == 'ledger' else platform.router_grpc_port}"
    capability = stub_class.__name__.removesuffix("Stub")
    name = next(c for c in MAY_CALL[service] if c.endswith(capability))
    caller, outsider = allowed(service, name), not_allowed(service, name)

    def code(metadata):
        return grpc_code(target, stub_class, method, request_, metadata)

    assert code([]) == grpc.StatusCode.UNAUTHENTICATED
    assert code([("authorization", forged(service)["Authorization"])]) == grpc.StatusCode.UNAUTHENTICATED
    assert code([("authorization", endpoints.signer(caller).authorization(elsewhere(service)))]) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert code([("authorization", endpoints.signer(outsider).authorization(service))]) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert code([("authorization", endpoints.signer(caller).authorization(service))]) not in (
        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize("service", ["ledger", "router"])
def test_health_checks_answer_without_a_token_and_reflection_wants_one(platform, service):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    target = f"127.0.0.1:{platform.ledger_grpc_port if service == 'ledger' else platform.router_grpc_port}"
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            list(reflection)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("service", INTERNAL_SERVICES)
def test_probes_and_metrics_answer_without_a_token(platform, service):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(platform.url(service) + path, timeout=30).status_code == 200, (service, path)


def test_a_service_started_in_production_without_its_key_refuses_to_start_naming_it(endpoints):
    from services.delivery.settings import DeliverySettings

    with pytest.raises(ValueError, match="GENLINE_SERVICE_KEY must be set"):
        endpoints.settings(DeliverySettings, environment="production", service_key=None,
                           kafka_security_protocol="SASL_SSL", kafka_password="a-kafka-password-long-enough")
    keys = json.loads(endpoints.service_env("delivery")["GENLINE_SERVICE_KEYS"])
    assert set(keys) == set(INTERNAL_SERVICES)


def test_with_an_ops_port_probes_and_metrics_answer_there_only_and_nothing_else_does(platform, endpoints):
    """A scorer replica with GENLINE_OPS_PORT, as on Kubernetes: its internal API is not on
    the port Prometheus reaches, and its probes are not on the port ingest calls."""
    from genline_stack.ports import free_port

    ops = free_port()
    platform.ports["scorer#ops"] = ops  # where the fleet looks for its readiness
    replica = f"scorer#{len(platform.processes) + 1}"
    # On topics and a schema of its own: as one more member of the platform's scorers it would
    # rebalance their group for nothing this test looks at.
    namespace = f"ops{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    platform.ports[replica] = free_port()
    platform.service_env[replica] = {"GENLINE_OPS_PORT": str(ops), "GENLINE_TOPIC_NAMESPACE": namespace,
                                     "GENLINE_SCHEMA_NAME": f"{namespace}_scorer"}
    platform.start(replica)
    try:
        ops_url, api_url = f"http://127.0.0.1:{ops}", platform.url(replica)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(ops_url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        on_ops = {path: httpx.get(ops_url + path, timeout=30).status_code for path in ("/healthz", "/readyz", "/metrics")}
        on_api = {path: httpx.get(api_url + path, timeout=30).status_code for path in ("/healthz", "/readyz", "/metrics")}
        internal_on_ops = httpx.post(ops_url + "/internal/v1/calibration", json={"images": []},
                                     headers=headers_as(endpoints, "ingest", "scorer"), timeout=30)
        internal_on_api = httpx.post(api_url + "/internal/v1/calibration", json={"images": []},
                                     headers=headers_as(endpoints, "ingest", "scorer"), timeout=30)
    finally:
        platform.stop(replica)
        platform.ports.pop("scorer#ops")
    assert on_ops == {"/healthz": 200, "/readyz": 200, "/metrics": 200}
    assert on_api == {"/healthz": 404, "/readyz": 404, "/metrics": 404}
    assert internal_on_ops.status_code == 404 and internal_on_api.status_code == 200, internal_on_api.text
