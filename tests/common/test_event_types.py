"""EVENT_TYPES is derived from the contract classes: every Event subclass that names its
type is in it the moment it is defined, with no list to edit, and one type is one class."""

import pytest

from services.common.contracts import EVENT_TYPES, Event, JobEvent, JobSubmitted, parse_event


def test_every_contract_that_names_a_type_is_known_by_it():
    def contracts(base: type[Event]) -> list[type[Event]]:
        return [c for sub in base.__subclasses__() for c in [sub, *contracts(sub)]]

    # Those of the contracts module: a class a test planted may outlive its test.
    named = [cls for cls in contracts(Event) if "event_type" in vars(cls) and cls.__module__ == Event.__module__]
    assert EVENT_TYPES == {cls.event_type: cls for cls in named} and len(named) == len(EVENT_TYPES) > 30
    assert JobEvent not in EVENT_TYPES.values() and EVENT_TYPES["genline.job.submitted.v2"] is JobSubmitted


@pytest.fixture
def forget_planted():
    before = dict(EVENT_TYPES)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(before)


def test_a_new_event_class_is_parsed_without_editing_a_list(forget_planted):
    class ReportWithdrawn(JobEvent):
        event_type = "genline.report.withdrawn.v1"
        publisher = "ledger"
        n: int

    event = parse_event("genline.report.withdrawn.v1", {"job_id": "00000000-0000-0000-0000-000000000001",
                                                       "tenant_id": "acme", "n": 2})
    assert isinstance(event, ReportWithdrawn) and event.n == 2


def test_a_second_class_for_one_type_is_refused(forget_planted):
    with pytest.raises(TypeError, match="JobSubmittedAgain names 'genline.job.submitted.v2', already JobSubmitted's"):
        class JobSubmittedAgain(Event):
            event_type = "genline.job.submitted.v2"
            publisher = "ingest"
