"""An event about a job that reaches ingest's read model without its branch fails loudly at run
time, as it fails the type check (each match over AnyJobEvent ends in assert_never); what ingest
consumes, and that a consumer missing a type does not start, is tests/common/test_consumed_events.py."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from services.common.contracts import EVENT_TYPES, JobErased, JobEvent
from services.ingest.jobs import domain, job_log
from tests.ingest.test_read_model import SPEC


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
