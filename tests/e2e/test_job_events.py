"""Clients hear about their jobs: the event log, its SSE streams resumed with Last-Event-ID,
streams served by an ingest replica that applies no events itself, and tenant isolation."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import FINAL

# Reads wait for the pipeline, which a machine shared by several test runs can slow down.
STREAM_TIMEOUT = httpx.Timeout(10, read=180)


@pytest.fixture(scope="module")
def api_replica(platform) -> Iterator[str]:
    """A second ingest process on the same database that consumes no events (every entry it
    streams was applied by the platform's ingest), with a short keep-alive."""
    replica = platform.start_replica("ingest", {"GENLINE_CONSUME_EVENTS": "false", "GENLINE_STREAM_KEEPALIVE_S": "0.5"})
    try:
        yield platform.url(replica)
    finally:
        platform.stop(replica)


def sse(response: httpx.Response) -> Iterator[dict]:
    """The events of a `text/event-stream` body as dicts of their fields; a comment as {"comment": …}."""
    fields: dict = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield fields
            fields = {}


def entries(events) -> list[dict]:
    return [json.loads(e["data"]) | {"id": e["id"]} for e in events if "data" in e]


def stream(client: httpx.Client, path: str, **headers):
    return client.stream("GET", path, headers=headers, timeout=STREAM_TIMEOUT)


def test_the_log_pages_each_state_and_attempt_in_order(tenant_factory):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2)
    tenant.wait_settled([job_id])
    log = tenant.http.get(f"/v1/jobs/{job_id}/events").json()
    seqs = [e["seq"] for e in log["data"]]
    assert seqs == list(range(1, len(seqs) + 1)) and log["next"] is None and log["state"] == "succeeded"
    states = [e["payload"]["state"] for e in log["data"] if e["type"] == "state"]
    assert states == ["submitted", "admitted", "generating", "scoring", "delivering", "succeeded"]
    kinds = [e["type"] for e in log["data"]]
    assert kinds.index("attempt.started") < kinds.index("attempt.generated") < kinds.index("attempt.scored")
    # The receipt, just before the final state, once both the settlement and the delivery are in
    # (the ledger's and delivery's topics reach ingest in either order).
    assert kinds[-2:] == ["receipt.issued", "state"]
    assert sorted(kinds[-4:-2]) == ["billing.settled", "delivery.published"]
    page = tenant.http.get(f"/v1/jobs/{job_id}/events", params={"after": 2, "limit": 3}).json()
    assert [e["seq"] for e in page["data"]] == [3, 4, 5] and page["next"] == 5


def test_a_dropped_stream_resumes_after_its_last_event_id_with_each_entry_once(tenant_factory):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2)
    first = []
    with stream(tenant.http, f"/v1/jobs/{job_id}/stream") as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for event in sse(response):
            first += entries([event])
            if len(first) == 3:
                break  # the client drops here
    n = int(first[-1]["id"])
    with stream(tenant.http, f"/v1/jobs/{job_id}/stream", **{"Last-Event-ID": str(n)}) as response:
        rest = entries(sse(response))  # the stream ends by itself after the final state
    assert [int(e["id"]) for e in rest] == list(range(n + 1, n + 1 + len(rest)))
    assert [e["seq"] for e in rest] == [int(e["id"]) for e in rest]
    assert rest[-1]["type"] == "state" and rest[-1]["payload"]["state"] in FINAL
    log = tenant.http.get(f"/v1/jobs/{job_id}/events").json()["data"]
    assert [{k: v for k, v in e.items() if k != "id"} for e in first + rest] == log


def test_a_replica_streams_what_another_replica_applied(tenant_factory, api_replica):
    tenant = tenant_factory()
    replica = httpx.Client(base_url=api_replica, headers=tenant.http.headers)
    with replica, stream(replica, "/v1/events/stream") as live:  # from now on
        job_id = tenant.submit(images=1, candidates=2)  # on the platform's ingest
        seen = []
        for event in sse(live):
            seen += entries([event])
            if seen and seen[-1]["type"] == "state" and seen[-1]["payload"]["state"] in FINAL:
                break
        with stream(replica, f"/v1/jobs/{job_id}/stream") as whole:
            job_log = entries(sse(whole))
    assert {e["job_id"] for e in seen} == {job_id}
    cursors = [e["cursor"] for e in seen]
    assert cursors == list(range(cursors[0], cursors[0] + len(seen))) and cursors == [int(e["id"]) for e in seen]
    assert [e["seq"] for e in seen] == [e["seq"] for e in job_log] == list(range(1, len(job_log) + 1))
    assert job_log[-1]["payload"]["state"] in FINAL


def test_another_tenants_job_is_unknown_and_absent_from_the_tenant_stream(tenant_factory, api_replica):
    owner, other = tenant_factory(), tenant_factory()
    theirs = owner.submit(images=1, candidates=2)
    mine = other.submit(images=1, candidates=2)
    for path in (f"/v1/jobs/{theirs}/events", f"/v1/jobs/{theirs}/stream"):
        response = other.http.get(path)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json", path
        assert response.json()["type"] == "/problems/job-not-found"
    owner.wait_settled([theirs])
    other.wait_settled([mine])
    replica = httpx.Client(base_url=api_replica, headers=other.http.headers)
    with replica, stream(replica, "/v1/events/stream", **{"Last-Event-ID": "0"}) as response:
        history = []
        for event in sse(response):
            if "comment" in event and any(e["payload"].get("state") in FINAL for e in history):
                break  # a keep-alive after my job's end: the tenant's history has all been sent
            history += entries([event])
    assert history and {e["job_id"] for e in history} == {mine}
    assert [e["cursor"] for e in history] == list(range(1, len(history) + 1))


def test_a_bad_resume_point_or_job_id_is_a_problem(tenant_factory):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2)
    bad = [(f"/v1/jobs/{job_id}/stream", {"Last-Event-ID": "seven"}, 422),
           ("/v1/events/stream", {"Last-Event-ID": "-1"}, 422),
           (f"/v1/jobs/{job_id}/events?after=-1", {}, 422),
           ("/v1/jobs/not-a-job/stream", {}, 404),
           ("/v1/jobs/0f6c2d4e-9b1a-4c3e-8f7d-2a5b6c7d8e9f/events", {}, 404)]
    for path, headers, status in bad:
        response = tenant.http.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json", path
