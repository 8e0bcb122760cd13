"""A canceled job's generation stops, calls in flight included: the router asks the hosted
provider to cancel its request (fal's PUT …/cancel, Replicate's POST …/cancel) and publishes
nothing for the job. On the real broker, PostgreSQL and S3, over simulators of the providers'
APIs."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from services.common.contracts import JobCancelRequested
from tests.router.market import Behaviour
from tests.router.service import RouterTopic, credits_reserved, job_spec, publish, router_settings, running_router
from tests.router.stubs import stub_provider

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes


async def in_flight(market, settle_s: float, timeout_s: float = 30):
    """The provider's first job, once the adapter has had `settle_s` to learn its id."""
    deadline = time.monotonic() + timeout_s
    while not market.requests:
        assert time.monotonic() < deadline, "the provider was never called"
        await asyncio.sleep(0.05)
    request = next(iter(market.requests.values()))
    await asyncio.sleep(max(0.0, request.submitted_at + settle_s - time.monotonic()))
    return request


@pytest.mark.parametrize("primary", ["fal", "replicate"])
async def test_cancel_stops_generation_and_cancels_the_providers_request(endpoints, object_store, tmp_path, fal,
                                                                         replicate, primary):
    slow, other = (fal, replicate) if primary == "fal" else (replicate, fal)
    slow.market.reset(Behaviour(latency_s=120))
    overall_s = 12.0
    settle_s = 0.5
    registry = {"slow": stub_provider(slow, price=10_000, overall_s=overall_s),
                "other": stub_provider(other, price=30_000, overall_s=overall_s)}
    settings = router_settings(endpoints, tmp_path, registry)
    spec = job_spec(images=1, candidates=2)
    async with running_router(settings), RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(spec))
        request = await in_flight(slow.market, settle_s)
        assert request.cancelled_at is None

        await publish(settings, JobCancelRequested(job_id=spec.job_id, tenant_id=spec.tenant_id, reason="client",
                                                   requested_at=datetime.now(UTC)))

        deadline = time.monotonic() + 20
        while not slow.market.cancelled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [r.id for r in slow.market.cancelled()] == [request.id]
        assert request.cancelled_at < request.submitted_at + overall_s  # canceled by the job, not a timeout
        for _ in range(6):
            await topic.read_some()
    assert topic.of(spec.job_id) == [], "the router published for a canceled job"
    assert not other.market.requests, "the router fell back to another provider for a canceled job"
