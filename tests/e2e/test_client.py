"""The Python client (clients/python, `genline_client`) against the five services as
processes: submit, wait, list, cancel, download with checked hashes, typed errors, and
retries that keep one Idempotency-Key."""

import asyncio
import hashlib
import uuid

import httpx
import pytest

from genline_client import (
    AsyncGenline,
    Conflict,
    Genline,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    ValidationError,
)

FAST_RETRIES = RetryPolicy(max_retries=3, backoff_s=0.05, max_backoff_s=0.2)


class Interfering(httpx.HTTPTransport):
    """Passes requests to the real platform, but spoils the first answers it is told to:
    `lose` drops the answer after the server has acted on the request (the connection
    breaks on the way back), `throttle` answers 429 with Retry-After instead of forwarding."""

    def __init__(self, *spoil: str) -> None:
        super().__init__()
        self.spoil, self.forwarded, self.resumed_from = list(spoil), [], []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        action = self.spoil.pop(0) if self.spoil else "pass"
        if action == "throttle":
            problem = {"type": "/problems/rate-limited", "title": "Too many requests", "status": 429,
                       "detail": "slow down", "instance": request.url.path}
            return httpx.Response(429, json=problem, headers={"Retry-After": "2"})
        self.forwarded.append((request.method, request.url.path, request.headers.get("idempotency-key")))
        self.resumed_from.append(request.headers.get("last-event-id"))
        response = super().handle_request(request)
        if action == "lose":
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        if action == "cut":
            return httpx.Response(response.status_code, headers=response.headers, request=request,
                                  stream=CutAfterFirstChunk(response))
        return response


class CutAfterFirstChunk(httpx.SyncByteStream):
    """A body whose connection breaks after its first chunk (for a stream: its first events)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __iter__(self):
        for chunk in self.response.iter_raw():
            yield chunk
            break
        self.response.close()
        raise httpx.ReadError("connection reset mid-stream")


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_submit_wait_list_and_download_with_checked_hashes(tenant_factory, platform, tmp_path):
    tenant = tenant_factory()
    with Genline(tenant.api_key, platform.ingest_url) as client:
        submitted = client.jobs.create("a red bicycle against a brick wall", images=2, candidates=4, seed=11)
        job = client.jobs.wait(submitted, timeout=240)
        paths = client.jobs.download(job, tmp_path)
        page = client.jobs.list(limit=5)

    assert submitted.state == "submitted" and job.id == submitted.id
    assert job.state == "succeeded" and len(job.outputs) == 2 and job.billing.state == "settled"
    assert sorted(p.name for p in paths) == [f"{job.id}-{o.n}.png" for o in job.outputs]
    assert {sha256_of(p) for p in paths} == {o.sha256 for o in job.outputs}
    assert [s.id for s in page.data] == [job.id] and page.data[0].delivered == 2


def test_a_dropped_stream_resumes_after_the_last_entry_and_gives_every_entry_once(tenant_factory, platform):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2, seed=13)
    cutting = Interfering("cut")
    with Genline(tenant.api_key, platform.ingest_url, transport=cutting, retry=FAST_RETRIES) as client:
        streamed = list(client.jobs.stream(job_id))
        logged = client.jobs.events(job_id)
        resumed = list(client.jobs.stream(job_id, after=3))
        tenant_wide = []
        for event in client.jobs.stream_all(after=0):
            tenant_wide.append(event)
            if event.final:
                break

    seqs = [e.seq for e in streamed]
    assert seqs == list(range(1, len(seqs) + 1)) and streamed[-1].final  # each once, ending with the final state
    first_try, reconnect = cutting.resumed_from[:2]  # the stream broke after its first chunk
    assert first_try is None and 0 < int(reconnect) < seqs[-1]
    assert [e.new_state for e in streamed if e.new_state][:2] == ["submitted", "admitted"]
    assert logged == streamed
    assert [e.seq for e in resumed] == seqs[3:]
    assert {e.job_id for e in tenant_wide} == {uuid.UUID(job_id)} and [e.seq for e in tenant_wide] == seqs
    assert [e.cursor for e in tenant_wide] == sorted({e.cursor for e in tenant_wide})


def test_problems_become_typed_errors_that_carry_their_fields(tenant_factory, platform):
    owner, stranger = tenant_factory(), tenant_factory()
    job_id = owner.submit(images=1, candidates=2, seed=5)
    with Genline(stranger.api_key, platform.ingest_url) as client:
        with pytest.raises(NotFound) as not_found:
            client.jobs.get(job_id)
        with pytest.raises(NotFound):
            client.jobs.cancel(job_id)
        with pytest.raises(ValidationError) as invalid:
            client.jobs.create("a bicycle", images=101)
    with Genline("gl_not-a-key", platform.ingest_url) as client, pytest.raises(Unauthorized) as unauthorized:
        client.jobs.list()
    reader = owner.http.post("/v1/api-keys", json={"name": "reader", "scopes": ["jobs:read"]})
    with Genline(reader.json()["secret"], platform.ingest_url) as client, pytest.raises(PermissionDenied) as denied:
        client.jobs.create("a bicycle")
    with Genline(owner.api_key, platform.ingest_url) as client:
        client.jobs.wait(job_id, timeout=240)
        with pytest.raises(Conflict) as final:
            client.jobs.cancel(job_id)

    assert not_found.value.status == 404 and not_found.value.type == "/problems/job-not-found"
    assert not_found.value.request_id and not_found.value.instance == f"/v1/jobs/{job_id}"
    assert invalid.value.status == 422 and [e["field"] for e in invalid.value.errors] == ["images"]
    assert unauthorized.value.type == "/problems/invalid-api-key"
    assert denied.value.status == 403 and denied.value.problem["scope"] == "jobs:write"
    assert final.value.problem["state"] == "succeeded"


def test_a_submission_whose_answer_was_lost_is_retried_under_one_key_and_makes_one_job(tenant_factory, platform):
    tenant = tenant_factory()
    transport, slept = Interfering("throttle", "lose", "lose"), []
    with Genline(tenant.api_key, platform.ingest_url, transport=transport, retry=FAST_RETRIES,
                 sleep=slept.append) as client:
        submitted = client.jobs.create("a red bicycle against a brick wall", images=1, candidates=2, seed=9)
        listed = client.jobs.list()

    posts = [key for method, path, key in transport.forwarded if method == "POST"]
    assert len(posts) == 3 and len(set(posts)) == 1  # two answers lost, the same key each time
    assert [s.id for s in listed.data] == [submitted.id]  # one job
    assert slept[0] >= 2  # the throttled try waited out Retry-After


def test_retries_give_up_with_the_last_problem(tenant_factory, platform):
    tenant = tenant_factory()
    transport = Interfering("throttle", "throttle")
    with Genline(tenant.api_key, platform.ingest_url, transport=transport, retry=RetryPolicy(max_retries=1),
                 sleep=lambda _: None) as client, pytest.raises(RateLimited) as limited:
        client.jobs.list()
    assert limited.value.retry_after == 2 and limited.value.detail == "slow down"
    assert transport.forwarded == []


def test_the_async_client_submits_cancels_and_waits(tenant_factory, platform):
    tenant = tenant_factory()  # outside the event loop: the factory runs its own

    async def scenario():
        async with AsyncGenline(tenant.api_key, platform.ingest_url) as client:
            submitted = await client.jobs.create("a red bicycle against a brick wall", images=2, candidates=4,
                                                 idempotency_key=str(uuid.uuid4()))
            await client.jobs.cancel(submitted)
            return submitted, await client.jobs.wait(submitted.id, timeout=240, on_event=seen.append), \
                [s async for s in client.jobs.iterate(limit=1)]

    seen = []
    submitted, job, summaries = asyncio.run(scenario())
    assert seen[-1].new_state == job.state  # waited on the stream, to the final state
    assert job.state in ("canceled", "succeeded") and job.billing.state == "settled"
    assert [s.id for s in summaries] == [submitted.id]
