"""Canceled and expired jobs in the read model, as pure logic: a final job stays as it is,
whatever arrives after it; requests are fingerprinted parsed; Cancel-After durations."""

from datetime import timedelta

import pytest

from services.common.contracts import DeliveryFailed, JobCanceled, JobExpired, ScoringFailed
from services.ingest.domain import (JobIsFinal, apply_event, parse_duration, request_cancel, request_fingerprint,
                                    submitted_view)
from tests.ingest.test_read_model import EVENTS, JOB, SPEC, T0, views_in_every_order

CANCELED = JobCanceled(job_id=JOB, tenant_id="t", reason="canceled by the client")
RESERVED, SETTLED = EVENTS[0], EVENTS[4]


def settled(view):
    """The view once the ledger has reserved and settled: a final state shows only then."""
    for event in (RESERVED, SETTLED):
        view = apply_event(view, event, T0)
    return view


def test_a_canceled_job_stays_canceled_and_shows_no_late_outputs():
    views = views_in_every_order([CANCELED, *EVENTS])  # canceled, and a whole delivery arriving late
    for view in views:
        assert view.state in ("canceled", "succeeded")  # the first terminal event wins
        assert (view.outputs == []) == (view.state == "canceled")
    canceled_first = submitted_view(SPEC)
    for event in (CANCELED, EVENTS[3]):
        canceled_first = apply_event(canceled_first, event, T0)
    canceled_first = settled(canceled_first)
    assert canceled_first.state == "canceled" and canceled_first.outputs == []
    assert canceled_first.reasons["canceled"] == "canceled by the client"
    assert canceled_first.failure.code == "canceled"


def test_cancel_is_idempotent_and_refused_once_final():
    view, event = request_cancel(submitted_view(SPEC), T0, "client")
    assert event is not None and event.requested_at == T0 and view.cancel_requested_at == T0
    again, second = request_cancel(view, T0 + timedelta(seconds=1), "client")
    assert second is None and again == view
    with pytest.raises(JobIsFinal):
        request_cancel(settled(apply_event(view, CANCELED, T0)), T0, "client")


def test_a_deadline_failure_expires_the_job_and_other_failures_fail_it_at_their_stage():
    expired = settled(apply_event(submitted_view(SPEC), ScoringFailed(job_id=JOB, tenant_id="t", attempt=1,
                          failure_code="deadline_exceeded", reason="too late", scores=[]), T0))
    assert expired.state == "expired" and expired.failure.stage == "scoring"
    failed = settled(apply_event(apply_event(apply_event(submitted_view(SPEC), EVENTS[1], T0), EVENTS[2], T0),
                                 DeliveryFailed(job_id=JOB, tenant_id="t", failure_code="copy_failed",
                         reason="s3 down"), T0))
    assert failed.state == "failed" and (failed.failure.code, failed.failure.stage) == ("copy_failed", "delivery")
    swept = settled(apply_event(submitted_view(SPEC), JobExpired(job_id=JOB, tenant_id="t", stuck_in="delivering",
                                reason="no answer"), T0))
    assert swept.state == "expired" and swept.failure.stage == "delivering"


def test_the_same_request_in_another_key_order_has_the_same_fingerprint():
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2h", 7200)])
def test_cancel_after_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 minutes", "-5", "0", "8d", "999h"])
def test_bad_cancel_after_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)
