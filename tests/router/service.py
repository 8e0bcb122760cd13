"""The router service on the real broker, PostgreSQL and S3, over simulated HTTP providers.

`running_router` starts the router's own app (consumer, scheduler, engine, gRPC) in the
test's event loop, on topics and a schema of its own, with a registry of simulated providers;
`RouterTopic` follows what it publishes; `publish` plays the ledger and the scorer.
"""

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from genline_stack.embedded import create_topics
from genline_stack.ports import free_port
from services.common.bus.envelope import Envelope, envelop, from_kafka
from services.common.contracts import (
    AttemptStarted,
    CandidateScore,
    CreditsReserved,
    Event,
    JobSpec,
    RegenerationRequested,
    all_topics,
    topic_of,
)
from services.router.app import RouterApp
from services.router.grpc import pb, rpc
from services.router.settings import RouterSettings
from tests.identity import channel_as
from tests.kafka import publish_envelopes
from tests.router.stubs import STUB_SECRET, Stub, stub_provider


def router_settings(endpoints, tmp_path: Path, providers: dict, **overrides) -> RouterSettings:
    """Settings on topics and a schema of their own, with `providers` as the registry."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"t{suffix}"
    registry = tmp_path / f"providers-{suffix}.yaml"
    registry.write_text(yaml.safe_dump({"providers": providers}))
    return endpoints.settings(RouterSettings, **({
        "environment": "test", "topic_namespace": namespace, "schema_name": f"router_{suffix}",
        "providers_path": str(registry), "provider_secrets": {"STUB_KEY": STUB_SECRET},
        "grpc_port": free_port(), "kafka_session_timeout_ms": 6000, "attempt_poll_interval_s": 0.2,
        "retry_base_delay_s": 0.01, "retry_max_delay_s": 0.05,
    } | overrides))


def stub_registry(primary: Stub, fallback: Stub, **primary_entry) -> dict:
    """A cheap primary and a dearer fallback, both simulated HTTP providers."""
    return {"primary": stub_provider(primary, **({"price": 10_000, "overall_s": 0.5} | primary_entry)),
            "fallback": stub_provider(fallback, price=30_000, overall_s=2.0)}


@asynccontextmanager
async def running_router(settings: RouterSettings):
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    router = RouterApp(settings)
    await router.runtime.start()
    try:
        yield router
    finally:
        await router.runtime.stop()


def job_spec(images: int = 1, candidates: int = 2, fixed: bool = True, **fields) -> JobSpec:
    return JobSpec(**({"job_id": uuid.uuid4(), "tenant_id": "t-router", "template": "generic", "prompt": "a red fox",
                       "images": images, "candidates": candidates, "candidates_fixed": fixed, "seed": 7,
                       "submitted_at": datetime.now(UTC)} | fields))


def credits_reserved(spec: JobSpec, budget_micro_usd: int = 0) -> CreditsReserved:
    return CreditsReserved(job_id=spec.job_id, tenant_id=spec.tenant_id, job=spec, transfer_id=uuid.uuid4(),
                           amount=10 * spec.images, unit_price=10, max_provider_spend_micro_usd=budget_micro_usd)


def score(candidate, passed: bool, attempt: int = 1) -> CandidateScore:
    return CandidateScore(index=candidate.index, attempt=attempt, provider=candidate.provider, key=candidate.key,
                          sha256=candidate.sha256, size_bytes=candidate.size_bytes, media_type=candidate.media_type,
                          passed=passed, score=1.0 if passed else 0.0, dimensions={})


def rework(spec: JobSpec, attempt: int, needed: int, scores: list[CandidateScore]) -> RegenerationRequested:
    return RegenerationRequested(job_id=spec.job_id, tenant_id=spec.tenant_id, attempt=attempt, images=spec.images,
                                 passed=spec.images - needed, needed=needed, reason="too few passed", scores=scores)


async def publish(settings: RouterSettings, *events: Event | Envelope) -> None:
    """Publish events (or exact envelopes, to redeliver one) on their publisher's topic."""
    envelopes = [item if isinstance(item, Envelope) else envelop(item, "/test") for item in events]
    await publish_envelopes(settings.kafka_bootstrap, envelopes,
                            lambda envelope: topic_of(envelope.event.publisher, settings.topic_namespace))


class RouterTopic:
    """Everything the router publishes, read from the start of its topic."""

    def __init__(self, settings: RouterSettings) -> None:
        self.topic = topic_of("router", settings.topic_namespace)
        # No consumer group: partitions are assigned by hand, so reading starts at once.
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        self.events: list[Event] = []  # each attempt's outcome
        self.started: list[AttemptStarted] = []  # each attempt's start, announced before it

    async def __aenter__(self) -> "RouterTopic":
        await self.consumer.start()
        partitions = [TopicPartition(self.topic, p) for p in await self._partitions()]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        return self

    async def _partitions(self) -> set[int]:
        while not (partitions := self.consumer.partitions_for_topic(self.topic)):
            await self.consumer.topics()  # fetches the cluster's metadata
        return partitions

    async def __aexit__(self, *_) -> None:
        await self.consumer.stop()

    async def wait_for(self, job_id: uuid.UUID, attempt: int, timeout_s: float = 60) -> Event:
        """The router's event for this attempt of this job."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            found = self.of(job_id, attempt)
            if found:
                return found[0]
            await self.read_some()
        raise TimeoutError(f"no router event for attempt {attempt} of job {job_id} in {timeout_s}s")

    def of(self, job_id: uuid.UUID, attempt: int | None = None) -> list[Event]:
        return [e for e in self.events
                if e.job_id == job_id and (attempt is None or getattr(e, "attempt", None) == attempt)]

    async def read_some(self, timeout_ms: int = 300) -> None:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        for record in (r for records in batch.values() for r in records):
            event = from_kafka(record).event
            (self.started if isinstance(event, AttemptStarted) else self.events).append(event)


async def until(check, topic: RouterTopic, timeout_s: float = 30) -> None:
    """Keep reading the router's topic until `check()` (a coroutine function) is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{check.__name__} still false after {timeout_s}s")
        await topic.read_some()


async def list_providers(endpoints, settings: RouterSettings, templates: tuple[str, ...] = ()) -> dict:
    """ListProviders over gRPC as ingest asks, by provider name."""
    async with channel_as(endpoints, "ingest", f"127.0.0.1:{settings.grpc_port}", "router") as channel:
        response = await rpc.RouterServiceStub(channel).ListProviders(pb.ListProvidersRequest(templates=templates))
    return {p.name: p for p in response.providers}


async def find_clip_makers(endpoints, settings: RouterSettings, **clip) -> tuple[list[str], list[str]]:
    """FindClipMakers over gRPC as ingest asks: the providers that can make the clip, and why
    the others cannot."""
    async with channel_as(endpoints, "ingest", f"127.0.0.1:{settings.grpc_port}", "router") as channel:
        response = await rpc.RouterServiceStub(channel).FindClipMakers(pb.FindClipMakersRequest(**clip))
    return list(response.providers), list(response.reasons)
