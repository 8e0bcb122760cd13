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
        self.spoil, self.forwarded = list(spoil), []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        action = self.spoil.pop(0) if self.spoil else "pass"
        if action == "throttle":
            problem = {"type": "/problems/rate-limited", "title": "Too many requests", "status": 429,
                       "detail": "slow down", "instance": request.url.path}
            return httpx.Response(429, json=problem, headers={"Retry-After": "2"})
        self.forwarded.append((request.method, request.url.path, request.headers.get("idempotency-key")))
        response = super().handle_request(request)
        if action == "lose":
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


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


def test_problems_become_typed_errors_that_carry_their_fields(tenant_factory, platform):
    owner, stranger = tenant_factory(), tenant_factory()
    job_id = owner.submit(images=1, candidates=2, seed=5)
    with Genline(stranger.api_key, platform.ingest_url) as client:
        with pytest.raises(NotFound) as not_found:
            client.jobs.get(job_id)
        with pytest.raises(NotFound):
            client.jobs.cancel(job_id)
        with pytest.raises(ValidationError) as invalid:
            client.jobs.create("a bicycle", images=99)
    with Genline("gl_not-a-key", platform.ingest_url) as client, pytest.raises(Unauthorized) as unauthorized:
        client.jobs.list()
    with Genline(owner.api_key, platform.ingest_url) as client:
        client.jobs.wait(job_id, timeout=240)
        with pytest.raises(Conflict) as final:
            client.jobs.cancel(job_id)

    assert not_found.value.status == 404 and not_found.value.type == "/problems/job-not-found"
    assert not_found.value.request_id and not_found.value.instance == f"/v1/jobs/{job_id}"
    assert invalid.value.status == 422 and [e["field"] for e in invalid.value.errors] == ["images"]
    assert unauthorized.value.type == "/problems/invalid-api-key"
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
            return submitted, await client.jobs.wait(submitted.id, timeout=240), \
                [s async for s in client.jobs.iterate(limit=1)]

    submitted, job, summaries = asyncio.run(scenario())
    assert job.state in ("canceled", "succeeded") and job.billing.state == "settled"
    assert [s.id for s in summaries] == [submitted.id]
