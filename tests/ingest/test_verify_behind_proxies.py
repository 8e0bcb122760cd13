"""Callers' addresses behind an ingress: ingest served on loopback, the test calling as the proxy
(127.0.0.1) with the header a proxy writes. Only the proxies the operator names are believed:
POST /v1/verify's rate per address, with none named, is shared by every caller behind the
proxy; with it named each client has its own allowance, and a client that writes its own
X-Forwarded-For cannot choose another. The audit trail says "from where" by the same rule.
Looking soft bindings up (C2PA's resolution API) is counted per address on a budget of its own:
spending it leaves verify's whole."""

import asyncio
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from PIL import Image

from genline_stack.embedded import create_topics
from genline_stack.ports import free_port
from services.common.contracts import AuditRecorded, all_topics
from services.common.http_headers import client_address, networks
from services.common.runtime import listen
from services.ingest.accounts.tenants import Tenant, create_tenant
from services.ingest.app import build
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.processes  # serves ingest's HTTP API

BURST = 2


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Served:
    url: str
    settings: IngestSettings


@pytest.fixture(scope="module")
def served(endpoints) -> Iterator[callable]:
    """`served(**settings)`: an ingest with these settings, on loopback."""
    servers = []

    def serve(**overrides) -> Served:
        suffix = uuid.uuid4().hex[:8]
        settings = endpoints.settings(IngestSettings, **({"environment": "test", "topic_namespace": f"v{suffix}",
                                                          "schema_name": f"verify_{suffix}", "verify_burst": BURST,
                                                          "verify_requests_per_s": 0.01} | overrides))
        asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(settings.topic_namespace)))
        _, app = build(settings)
        port = free_port()
        # As services.common.runtime.serve serves it: uvicorn reads no forwarded header itself.
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=False))
        thread = threading.Thread(target=lambda: server.run(sockets=listen("127.0.0.1", [port])), daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            if server.started:
                break
            time.sleep(0.05)
        return Served(url, settings)

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def verify(url: str, **headers) -> int:
    return httpx.post(f"{url}/v1/verify", content=png(), headers={"Content-Type": "image/png"} | headers,
                      timeout=60).status_code


def until_refused(url: str, forwarded_for) -> list[int]:
    """Answers to requests forwarded for `forwarded_for(n)`, up to the first refusal."""
    answers: list[int] = []
    while not answers or answers[-1] != 429:
        assert len(answers) < 10 * BURST, "never refused"
        answers.append(verify(url, **{"X-Forwarded-For": forwarded_for(len(answers))}))
    return answers


def test_a_proxy_nobody_named_is_one_address_whatever_it_forwards(served):
    url = served().url
    answers = until_refused(url, lambda n: f"198.51.100.{n}")  # a new client each time, to the proxy
    assert set(answers[:-1]) == {200} and len(answers) - 1 >= BURST


def test_behind_a_named_proxy_each_client_has_its_own_allowance_and_cannot_choose_another(served):
    url = served(trusted_proxies=["127.0.0.0/8"]).url
    first = until_refused(url, lambda n: "198.51.100.7")
    # The client writes an address of its own to the left; the proxy appends the real one.
    forged = verify(url, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
    others = [verify(url, **{"X-Forwarded-For": f"198.51.100.{10 + n}"}) for n in range(len(first))]

    assert set(first[:-1]) == {200} and len(first) - 1 >= BURST
    assert forged == 429 and others == [200] * len(first)


def test_soft_binding_lookups_are_counted_per_address_apart_from_verify(served):
    url = served(soft_binding_burst=BURST, soft_binding_requests_per_s=0.01).url
    lookup = {"alg": "com.genline.watermark.tiles.2", "value": "AAAAAAAA"}
    answers = [httpx.get(f"{url}/matches/byBinding", params=lookup, timeout=30) for _ in range(BURST + 2)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 200 and answers[0].json() == {"matches": []}
    assert 429 in statuses and set(statuses[:statuses.index(429)]) == {200} and statuses.index(429) >= BURST
    refused = answers[statuses.index(429)]
    assert refused.headers["content-type"] == "application/problem+json" and int(refused.headers["retry-after"]) > 0
    assert httpx.get(f"{url}/manifests/urn:c2pa:00000000-0000-4000-8000-000000000000", timeout=30).status_code == 429
    assert verify(url) == 200  # verify's allowance is its own


def audit_origins(settings: IngestSettings, action: str) -> list[str | None]:
    """Where the audit records of `action` that ingest wrote (its outbox) say it came from."""
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        bodies = conn.execute(f'SELECT body FROM "{settings.schema_name}".outbox WHERE event_type = %s',
                              [AuditRecorded.event_type]).fetchall()
    return [record["details"].get("origin") for (body,) in bodies
            if (record := json.loads(bytes(body)))["action"] == action]


@pytest.mark.parametrize(("proxies", "origin"), [(["127.0.0.0/8"], "198.51.100.7"), ([], "127.0.0.1")])
def test_the_audit_trail_names_the_client_behind_a_named_proxy_and_never_believes_another(served, proxies, origin):
    ingest = served(trusted_proxies=proxies)
    key = asyncio.run(create_tenant(ingest.settings, Tenant(f"t-{uuid.uuid4().hex[:8]}", plan="enterprise")))
    created = httpx.post(f"{ingest.url}/v1/api-keys", json={"name": "ci", "scopes": ["jobs:read"]}, timeout=30,
                         headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
    assert created.status_code == 201, created.text
    assert audit_origins(ingest.settings, "api_key.create") == [origin]


def test_forwarded_headers_are_read_from_the_right_past_the_named_proxies():
    proxies = networks(["10.0.0.0/8", "2001:db8:ffff::/48"])
    assert client_address("10.1.2.3", "192.0.2.60, 198.51.100.7, 10.9.9.9", proxies=proxies) == "198.51.100.7"
    assert client_address("203.0.113.5", "198.51.100.7", proxies=proxies) == "203.0.113.5"  # not a named proxy
    assert client_address("10.1.2.3", None, proxies=proxies) == "10.1.2.3"
    assert client_address("10.1.2.3", 'for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https', proxies=proxies) \
        == "2001:db8:cafe::17"
    assert client_address("10.1.2.3", "for=198.51.100.9;by=10.0.0.1, for=unknown", proxies=proxies) == "10.1.2.3"
    assert client_address("10.1.2.3", "192.0.2.1:8443, 10.0.0.7", proxies=proxies) == "192.0.2.1"
    assert client_address("10.1.2.3", "10.0.0.8, 10.0.0.7", proxies=proxies) == "10.0.0.8"
    assert client_address(None, "198.51.100.7", proxies=proxies) == "unknown"
    with pytest.raises(ValueError):
        networks(["not-an-address"])
