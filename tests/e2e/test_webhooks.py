"""Webhooks on the five services as processes: a receiver started here (a real HTTP server)
verifies every request with the `standardwebhooks` package. One job ends and its event goes
to several endpoints of its tenant, each answering its own way, and to the job's own URL.
The session's retry schedule is short (conftest: GENLINE_WEBHOOK_RETRY_SCHEDULE_S)."""

import asyncio
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.common.bus.envelope import from_kafka
from services.common.contracts import TOPICS
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN
from tests.kafka import read_topic


class Receiver:
    """An HTTP server answering each path from its script (the last answer repeats), recording
    every request, and accepting each `webhook-id` once, as a receiver that deduplicates."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[int]] = {}
        self.requests: dict[str, list[tuple[dict, bytes]]] = {}
        self.accepted: dict[str, set[str]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    seen = receiver.requests.setdefault(self.path, [])
                    seen.append((dict(self.headers), body))
                    script = receiver.scripts.get(self.path, [200])
                    status = script[min(len(seen), len(script)) - 1]
                    if 200 <= status < 300:
                        receiver.accepted.setdefault(self.path, set()).add(self.headers["webhook-id"])
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def wait(self, path: str, count: int, timeout_s: float = 90) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.requests.get(path, [])) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = self.requests.get(path, [])
        assert len(seen) >= count, f"{path}: {len(seen)} requests after {timeout_s}s, expected {count}"
        return seen


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def verifies(secret: str, request: tuple[dict, bytes]) -> bool:
    headers, body = request
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def create_endpoint(tenant, url: str, **fields) -> dict:
    response = tenant.http.post("/v1/webhook-endpoints", json={"url": url} | fields)
    assert response.status_code == 201, response.text
    assert response.json()["secret"].startswith("whsec_")
    return response.json()


def attempts(tenant, path: str, count: int, timeout_s: float = 30) -> list[dict]:
    """The attempts on record, oldest first, once there are `count` (their record follows the answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = tenant.http.get(path)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if len(data) >= count or time.monotonic() > deadline:
            return sorted(data, key=lambda a: a["attempted_at"])
        time.sleep(0.2)


def webhooks_sent(bootstrap: str, job_id: str, want: int) -> list:
    """The job's WebhookSent events on delivery's topic."""
    records = asyncio.run(read_topic(bootstrap, TOPICS["delivery"], want, timeout_s=30, keep=lambda r: (
        dict(r.headers).get("ce_type") == b"genline.webhook.sent.v1" and dict(r.headers).get("ce_subject") == job_id.encode())))
    return [from_kafka(r).event for r in records]


def test_a_finished_job_reaches_every_endpoint_signed_retried_recorded_and_redeliverable(tenant_factory, receiver,
                                                                                           endpoints):
    tenant = tenant_factory()
    receiver.scripts = {"/flaky": [500, 500, 500, 200], "/gone": [410], "/rotated": [200], "/job": [200]}
    flaky = create_endpoint(tenant, receiver.url("/flaky"), event_types=["job.succeeded"])
    gone = create_endpoint(tenant, receiver.url("/gone"))
    rotated = create_endpoint(tenant, receiver.url("/rotated"))
    create_endpoint(tenant, receiver.url("/never"), event_types=["job.failed"])  # not subscribed to success
    old_secret = rotated["secret"]
    rotation = tenant.http.post(f"/v1/webhook-endpoints/{rotated['id']}/rotate-secret", json={"overlap_s": 3600})
    assert rotation.status_code == 200, rotation.text
    new_secret = rotation.json()["secret"]
    assert new_secret != old_secret and rotation.json()["previous_secret_expires_at"]
    job_secret = tenant.http.get("/v1/webhooks/default/secret").json()["key"]

    job_id = tenant.submit(images=1, candidates=2, seed=3, webhook_url=receiver.url("/job"),
                           webhook_events=["job.succeeded", "job.failed"])
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded"

    # 500 three times, then 200: four attempts, one webhook-id, every one signed, accepted once.
    requests = receiver.wait("/flaky", 4)
    assert all(verifies(flaky["secret"], r) for r in requests)
    assert len({headers["webhook-id"] for headers, _ in requests}) == 1
    assert len(receiver.accepted["/flaky"]) == 1
    event = json.loads(requests[-1][1])
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job_id
    assert event["data"]["state"] == "succeeded" and event["data"]["billing"]["state"] == "settled"
    image = httpx.get(event["data"]["outputs"][0]["url"])  # a freshly signed link that works
    assert image.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == job["outputs"][0]["sha256"]
    on_record = attempts(tenant, f"/v1/webhook-endpoints/{flaky['id']}/attempts", 4)
    assert [a["status_code"] for a in on_record] == [500, 500, 500, 200]
    assert {a["webhook_id"] for a in on_record} == {requests[0][0]["webhook-id"]}
    assert all(a["latency_ms"] >= 0 and a["response_excerpt"] == "ok" for a in on_record)
    assert on_record[-1]["message_state"] == "delivered"

    # Redelivery sends the same event again, with the same webhook-id.
    redelivery = tenant.http.post(f"/v1/webhook-attempts/{on_record[-1]['id']}/redeliver")
    assert redelivery.status_code == 202, redelivery.text
    again = receiver.wait("/flaky", 5)[4]
    assert verifies(flaky["secret"], again)
    assert again[0]["webhook-id"] == requests[0][0]["webhook-id"]
    assert len(receiver.accepted["/flaky"]) == 1  # the receiver's dedupe by webhook-id holds
    assert len(attempts(tenant, f"/v1/webhook-endpoints/{flaky['id']}/attempts", 5)) == 5

    # During the rotation's overlap both secrets verify; after it only the new one.
    [signed_twice] = receiver.wait("/rotated", 1)
    assert verifies(old_secret, signed_twice) and verifies(new_secret, signed_twice)
    assert len(signed_twice[0]["webhook-signature"].split(" ")) == 2
    newest = tenant.http.post(f"/v1/webhook-endpoints/{rotated['id']}/rotate-secret", json={"overlap_s": 0}).json()
    [first] = attempts(tenant, f"/v1/webhook-endpoints/{rotated['id']}/attempts", 1)
    assert tenant.http.post(f"/v1/webhook-attempts/{first['id']}/redeliver").status_code == 202
    after_overlap = receiver.wait("/rotated", 2)[1]
    assert verifies(newest["secret"], after_overlap)
    assert not verifies(new_secret, after_overlap) and not verifies(old_secret, after_overlap)

    # A 410 disables the endpoint after one attempt.
    receiver.wait("/gone", 1)
    deadline = time.monotonic() + 30
    while (endpoint := tenant.http.get(f"/v1/webhook-endpoints/{gone['id']}").json())["enabled"]:
        assert time.monotonic() < deadline, endpoint
        time.sleep(0.2)
    assert "410" in endpoint["disabled_reason"]
    assert [a["status_code"] for a in attempts(tenant, f"/v1/webhook-endpoints/{gone['id']}/attempts", 1)] == [410]

    # The job's own URL, signed with the tenant's job secret; the job lists every attempt.
    [own] = receiver.wait("/job", 1)
    assert verifies(job_secret, own)
    of_job = attempts(tenant, f"/v1/jobs/{job_id}/webhook-attempts", 5 + 2 + 1 + 1)
    assert {a["url"] for a in of_job} == {receiver.url(p) for p in ("/flaky", "/gone", "/rotated", "/job")}
    assert "/never" not in receiver.requests

    # Each message that is done is announced on delivery's topic, for the job's history.
    sent = webhooks_sent(endpoints.kafka_bootstrap, job_id, 6)
    by_endpoint = {(e.endpoint_id and str(e.endpoint_id), e.attempts, e.outcome, e.status_code) for e in sent}
    assert {(flaky["id"], 4, "delivered", 200), (flaky["id"], 5, "delivered", 200), (gone["id"], 1, "failed", 410),
            (rotated["id"], 1, "delivered", 200), (rotated["id"], 2, "delivered", 200),
            (None, 1, "delivered", 200)} == by_endpoint


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://[::ffff:192.168.1.1]/hook", "ftp://example.com/hook",
                                 "http://user:pw@127.0.0.1/hook"])
def test_private_and_odd_urls_are_refused(tenant_factory, url):
    tenant = tenant_factory(credits=0)
    created = tenant.http.post("/v1/webhook-endpoints", json={"url": url})
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert created.json()["type"] == "/problems/webhook-url-refused"
    submitted = tenant.http.post("/v1/jobs", json={"prompt": "a red bicycle", "webhook_url": url})
    assert submitted.status_code == 422, submitted.text
    assert submitted.json()["type"] == "/problems/webhook-url-refused"
    assert tenant.http.get("/v1/webhook-endpoints").json()["data"] == []


def audit_trail(platform, tenant_id: str, want: int, timeout_s: float = 30) -> list[dict]:
    """The tenant's entries in the ledger's audit trail, oldest first, once there are `want`."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{platform.url('ledger')}/admin/v1/audit", params={"tenant_id": tenant_id},
                             headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"})
        assert response.status_code == 200, response.text
        entries = response.json()["entries"]
        if len(entries) >= want or time.monotonic() > deadline:
            return entries[::-1]
        time.sleep(0.3)


def test_another_tenants_endpoints_and_attempts_are_not_found(tenant_factory, platform):
    owner, other = tenant_factory(credits=0), tenant_factory(credits=0)
    endpoint = create_endpoint(owner, "http://127.0.0.1:9/hook")
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert other.http.get(path).status_code == 404
    assert other.http.patch(path, json={"enabled": False}).status_code == 404
    assert other.http.post(f"{path}/rotate-secret", json={}).status_code == 404
    assert other.http.get(f"{path}/attempts").status_code == 404
    assert other.http.delete(path).status_code == 404
    assert other.http.get("/v1/webhook-endpoints").json()["data"] == []
    assert owner.http.get(path).json()["enabled"] is True  # untouched
    job_id = owner.submit()
    assert other.http.get(f"/v1/jobs/{job_id}/webhook-attempts").status_code == 404
    missing = other.http.post(f"/v1/webhook-attempts/{endpoint['id']}/redeliver")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    rotated = owner.http.post(f"{path}/rotate-secret", json={"overlap_s": 60})
    assert rotated.status_code == 200
    assert owner.http.delete(path).status_code == 204
    assert owner.http.get(path).status_code == 404

    # The owner's changes are on the audit trail, by its key, without a secret; the other
    # tenant's refused ones are not.
    entries = audit_trail(platform, owner.id, 3)
    assert [(e["service"], e["action"], e["target"]) for e in entries] == [
        ("delivery", f"webhook_endpoint.{action}", f"webhook_endpoint:{endpoint['id']}")
        for action in ("create", "rotate_secret", "delete")]
    [owner_key] = owner.http.get("/v1/api-keys").json()["data"]
    assert {e["actor"] for e in entries} == {f"key:{owner_key['id']}"}
    assert "whsec_" not in json.dumps(entries) and entries[0]["details"]["url"] == "http://127.0.0.1:9/hook"
    assert audit_trail(platform, other.id, 1, timeout_s=1) == []


def test_webhooks_need_a_key_with_the_webhooks_scope(tenant_factory, platform):
    tenant = tenant_factory(credits=0)
    reader = tenant.http.post("/v1/api-keys", json={"name": "dashboard", "scopes": ["jobs:read"]}).json()
    with httpx.Client(base_url=platform.ingest_url, headers={"Authorization": f"Bearer {reader['secret']}"}) as http:
        for response in (http.get("/v1/webhook-endpoints"), http.get("/v1/webhooks/default/secret"),
                         http.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"})):
            assert response.status_code == 403, response.text
            assert response.json()["scope"] == "webhooks:manage"
    assert tenant.http.get("/v1/webhook-endpoints").json()["data"] == []
