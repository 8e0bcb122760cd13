"""Each service declares once what it consumes (`handlers.CONSUMES`: the union it handles and
the union it passes over); its subscription is derived from that declaration, and a consumer
whose declaration leaves a type on its topics without a branch does not start, naming it. A
type that reaches a running consumer without a branch goes to the DLQ (tests/common/test_bus.py)."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from services.common.bus import Consumption, Unbranched
from services.common.bus.envelope import FLOOR
from services.common.contracts import EVENT_TYPES, SUBSCRIPTIONS, Event, JobEvent, topic_of
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.delivery import handlers as delivery
from services.ingest.jobs import domain as ingest_domain
from services.ingest.jobs import handlers as ingest
from services.ledger import handlers as ledger
from services.router import handlers as router
from services.scorer import handlers as scorer

DECLARATIONS = {"ingest": ingest.CONSUMES, "ledger": ledger.CONSUMES, "router": router.CONSUMES,
                "scorer": scorer.CONSUMES, "delivery": delivery.CONSUMES}


def runtime_handling(declaration: Consumption) -> ServiceRuntime:
    """A runtime of the service (nothing started, nothing reached) with a handler for each type
    `declaration` handles, as the service registers its own."""
    settings = ServiceSettings(environment="test", database_url="postgresql://nobody@127.0.0.1:9/none",
                               kafka_bootstrap="127.0.0.1:9", s3_access_key_id="nobody", s3_secret_access_key="nothing")
    runtime = ServiceRuntime(declaration.service, settings, migrations_package=None)

    async def handler(_ctx: object, _event: Event) -> None:
        return None

    for event_type in declaration.handled:
        runtime.consumer.on(event_type)(handler)
    return runtime


def test_every_service_declares_what_it_consumes():
    assert sorted(DECLARATIONS) == sorted(SUBSCRIPTIONS)
    assert all(declaration.service == service for service, declaration in DECLARATIONS.items())


@pytest.mark.parametrize("service", sorted(DECLARATIONS))
def test_a_service_reads_the_topics_the_contracts_name_it_a_reader_of(service):
    """Derived from the types it handles; the journals of those topics wait for its group."""
    assert set(DECLARATIONS[service].publishers) == set(SUBSCRIPTIONS[service])


@pytest.mark.parametrize("service", sorted(DECLARATIONS))
def test_a_service_starts_with_its_declaration(service):
    declaration = DECLARATIONS[service]
    assert declaration.without_branch() == ()
    runtime_handling(declaration).consume(declaration)


@pytest.mark.parametrize("service", sorted(DECLARATIONS))
def test_a_consumer_missing_one_type_does_not_start(service):
    declaration = DECLARATIONS[service]
    forgotten = declaration.passed_over[-1]
    missing_one = replace(declaration, passed_over=declaration.passed_over[:-1])
    with pytest.raises(Unbranched, match=rf"{service} does not start: no branch for {forgotten.__name__} "):
        runtime_handling(declaration).consume(missing_one)


@pytest.mark.parametrize("service", sorted(DECLARATIONS))
def test_a_consumer_whose_handlers_differ_from_its_declaration_does_not_start(service):
    declaration = DECLARATIONS[service]
    runtime = runtime_handling(replace(declaration, handled=declaration.handled[1:]))
    with pytest.raises(Unbranched, match=f"no handler for {declaration.handled[0].__name__} "):
        runtime.consume(declaration)


async def test_a_record_of_a_type_passed_over_is_read_no_further_than_its_headers():
    """Its body is not parsed (a malformed one is left to the consumers that handle its type,
    which dead-letter it; this one's broker is not even started), and its journal's floor counts."""
    runtime = runtime_handling(ledger.CONSUMES)
    runtime.consume(ledger.CONSUMES)
    passed_over = ledger.CONSUMES.passed_over[0]
    topic, floor = topic_of(passed_over.publisher, runtime.settings.topic_namespace), datetime(2026, 1, 2, tzinfo=UTC)
    record = ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=b"job", value=b"{not json",
                            checksum=None, serialized_key_size=3, serialized_value_size=9,
                            headers=[("ce_type", passed_over.event_type.encode()), (FLOOR, floor.isoformat().encode())])
    assert await runtime.consumer._decode([record]) == []
    assert runtime.consumer.inbox_floors.floors[topic] == floor


@pytest.fixture
def rescored() -> Iterator[type[JobEvent]]:
    """An event type the contracts might gain, with no branch anywhere yet; defining it registers
    it among the event types, so it is taken out again for the tests that follow."""

    class CandidatesRescored(JobEvent):
        event_type = "genline.candidates.rescored.v1"
        publisher = "scorer"

    yield CandidatesRescored
    del EVENT_TYPES[CandidatesRescored.event_type]


def test_a_new_event_type_stops_every_service_that_reads_its_topic_until_each_says_what_it_does(rescored):
    refused = set()
    for service, declaration in DECLARATIONS.items():
        try:
            runtime_handling(declaration).consume(declaration)
        except Unbranched as refusal:
            assert "CandidatesRescored (genline.candidates.rescored.v1)" in str(refusal)
            refused.add(service)
    assert refused == {"ingest", "router", "delivery", "ledger"} == {s for s in SUBSCRIPTIONS if "scorer" in SUBSCRIPTIONS[s]}
    passing_it_over = replace(router.CONSUMES, passed_over=(*router.CONSUMES.passed_over, rescored))
    runtime_handling(passing_it_over).consume(passing_it_over)


def test_ingest_projects_only_events_its_read_model_has_a_branch_for():
    """The read model's matches (`merged`, `job_log.event_facts`) end in assert_never over
    AnyJobEvent, which the type check holds `ingest.as_projected` to."""
    assert set(ingest.CONSUMES.handled) <= set(ingest_domain.JOB_EVENTS)
    with pytest.raises(AssertionError, match="ingest projects no genline.candidates.stored"):
        ingest.as_projected(next(t for t in ingest.CONSUMES.passed_over if t.__name__ == "CandidatesStored")
                            .model_construct())
