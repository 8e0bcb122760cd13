"""Never paying twice for a remote job, counted at the providers' simulators.

The job's handle is written down before its first poll; a router that stops or dies while
it runs resumes it (one submission in all); an API that cannot cancel keeps its abandoned
job, which the next call for the same candidates polls instead of paying again.
"""

import asyncio
import uuid
from dataclasses import replace

import pytest

from services.router.engine import RoutingEngine
from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.factory import build_providers
from services.router.providers.journal import MemoryJournal
from services.router.providers.registry import parse_registry
from services.router.routing_types import RouteRequest
from tests.router.market import SECRET, Script
from tests.router.stubs import entry
from tests.router.test_conformance import QUEUED, adapter_over, request_for


class PollWatchingJournal(MemoryJournal):
    """A journal that notes how often the job had been polled when it was written down."""

    def __init__(self, market) -> None:
        super().__init__()
        self.market = market
        self.polls_when_written: list[int] = []

    async def started(self, key, handle) -> None:
        job = self.market.jobs.get(handle["id"])
        self.polls_when_written.append(job.polls if job else 0)
        await super().started(key, handle)


@pytest.mark.parametrize("adapter", QUEUED)
async def test_the_job_is_written_down_before_its_first_poll(adapter, simulators, client):
    simulator = simulators[adapter]
    simulator.market.reset()
    journal = PollWatchingJournal(simulator.market)
    await adapter_over(simulator, client, journal).generate(request_for(adapter))
    assert journal.polls_when_written == [0]
    [job] = simulator.market.submissions
    assert job.polls >= 1
    assert [written.handle["id"] for written in journal.jobs.values()] == [job.id]


async def test_a_job_the_api_cannot_cancel_is_polled_again_not_paid_again(simulators, client):
    simulator = simulators["bfl"]
    simulator.market.reset(Script(latency_s=0.6))
    journal = MemoryJournal()
    provider = adapter_over(simulator, client, journal, overall_s=0.3)
    request = request_for("bfl", timeout_s=0.3)
    with pytest.raises(ProviderError, match="timeout"):
        await provider.generate(request)
    images = await adapter_over(simulator, client, journal, overall_s=2.0).generate(replace(request, timeout_s=2.0))
    assert len(images) == 1
    assert len(simulator.market.submissions) == 1


def two_provider_engine(simulators, client, journal, first: str, second: str) -> RoutingEngine:
    registry = parse_registry({"providers": {
        first: entry(simulators[first], price=10_000, overall_s=10.0),
        second: entry(simulators[second], price=20_000, overall_s=10.0),
    }})
    context = ProviderContext(client=client, journal=journal)
    providers = build_providers(registry, secrets={"STUB_KEY": SECRET}, context=context)
    return RoutingEngine(registry, providers, journal=journal), context


def route_request(job_id: str) -> RouteRequest:
    return RouteRequest(job_id=job_id, tenant_id="t1", tier="stable", template="generic", prompt="a red fox", seed=7,
                        images_needed=1, candidates=2, width=512, height=512, model="stub-model", time_left_s=30.0)


async def test_a_router_that_stops_mid_job_leaves_it_to_the_next_which_resumes_it(simulators, client):
    fal, runware = simulators["fal"], simulators["runware"]
    fal.market.reset(Script(latency_s=1.0))
    runware.market.reset()
    journal, job_id = MemoryJournal(), uuid.uuid4().hex
    engine, context = two_provider_engine(simulators, client, journal, "fal", "runware")
    attempt = asyncio.create_task(engine.route(route_request(job_id)))
    while not fal.market.submissions:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    context.handing_over = True  # the router stops: its attempts are cancelled, their jobs left running
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert fal.market.cancels == []

    # The next router prefers the other provider: it resumes the job on fal all the same.
    engine, _ = two_provider_engine(simulators, client, journal, "runware", "fal")
    result = await engine.route(route_request(job_id))

    assert len(fal.market.submissions) == 1 and runware.market.submissions == []
    assert {routed.provider for routed in result.images} == {"fal"}
    assert sorted(routed.image.index for routed in result.images) == [0, 1]
    assert [job.state for job in journal.jobs.values()] == ["succeeded"]


class UnwritableJournal(MemoryJournal):
    """PostgreSQL gone between the submit and the write."""

    async def started(self, key, handle) -> None:
        raise ConnectionError("the database is away")


@pytest.mark.parametrize("adapter", ["replicate", "fal", "comfyui"])
async def test_a_job_that_cannot_be_written_down_is_canceled(adapter, simulators, client):
    simulator = simulators[adapter]
    simulator.market.reset(Script(latency_s=5))
    with pytest.raises(ConnectionError):
        await adapter_over(simulator, client, UnwritableJournal()).generate(request_for(adapter))
    [job] = simulator.market.submissions
    assert simulator.market.cancels == [job.id] and job.polls == 0
