"""Every event about a job that ingest reads has its branch in the read model (`jobs/domain.merged`)
and in the event log (`jobs/job_log.event_facts`): the list is derived from the contracts
(the job events on the topics ingest subscribes to, and ingest's own, which a replay reads
back), so an event type added there without its branches fails here, as it fails the type
check (each match ends in assert_never) and, at run time, the assertion."""

import ast
import inspect
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from services.common.contracts import EVENT_TYPES, SUBSCRIPTIONS, JobErased, JobEvent, JobSubmitted
from services.ingest.jobs import domain, job_log
from tests.ingest.test_read_model import SPEC

INGEST_READS = {cls for cls in EVENT_TYPES.values()
                if issubclass(cls, JobEvent) and cls.publisher in (*SUBSCRIPTIONS["ingest"], "ingest")}


def branches(function) -> set[str]:
    """The class names the cases of the function's match statement name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {node.cls.id for node in ast.walk(tree) if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Name)}


def test_ingest_reads_the_job_events_of_every_topic_it_subscribes_to():
    publishers = {cls.publisher for cls in INGEST_READS}
    assert publishers == {"ingest", "ledger", "router", "scorer", "delivery"}
    assert set(domain.JOB_EVENTS) == INGEST_READS  # the union the matches are checked against


@pytest.mark.parametrize("function", [domain.merged, job_log.event_facts], ids=["merged", "event_facts"])
def test_every_job_event_ingest_reads_has_its_branch(function):
    missing = {cls.__name__ for cls in INGEST_READS} - branches(function)
    assert not missing, f"{function.__name__} has no branch for {sorted(missing)}"


def test_a_function_without_a_branch_is_caught():
    def planted(event):
        match event:
            case JobSubmitted() | JobErased():
                return 1
        return 0
    missing = {cls.__name__ for cls in INGEST_READS} - branches(planted)
    assert "CreditsReserved" in missing and "JobErased" not in missing


@pytest.fixture
def unheard() -> Iterator[type[JobEvent]]:
    """An event type the contracts might gain, with no branch anywhere yet; defining it registers
    it among the event types, so it is taken out again for the tests that follow."""

    class Unheard(JobEvent):
        event_type: ClassVar[str] = "genline.unheard.v1"
        publisher: ClassVar[str] = "router"

    yield Unheard
    del EVENT_TYPES[Unheard.event_type]


def test_an_event_without_a_branch_fails_loudly_at_run_time(unheard):
    Unheard = unheard  # noqa: N806
    view = domain.submitted_view(SPEC)
    event = Unheard(job_id=view.id, tenant_id=view.tenant_id)
    with pytest.raises(AssertionError, match="not an event about a job"):
        domain.apply_event(view, event, at=datetime.now(UTC))
    with pytest.raises(AssertionError):
        domain.merged(view, event, at=datetime.now(UTC))  # type: ignore[arg-type]  # what mypy would refuse
    with pytest.raises(AssertionError, match="not an event about a job"):
        job_log.event_facts(view, event)


def test_an_event_of_another_job_is_refused():
    view = domain.submitted_view(SPEC)
    other = JobErased(job_id=uuid.uuid4(), tenant_id=view.tenant_id, requested_at=datetime.now(UTC))
    with pytest.raises(AssertionError, match="applied to job"):
        domain.apply_event(view, other, at=datetime.now(UTC))
