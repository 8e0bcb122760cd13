"""Canceled and expired jobs in the read model, as pure logic: a final job stays as it is,
whatever arrives after it; the sweeper's decisions; requests are fingerprinted parsed;
Cancel-After durations."""

from datetime import timedelta

import pytest

from services.common.contracts import DeliveryFailed, JobCanceled, JobCancelRequested, JobClosed, ScoringFailed
from services.ingest.jobs.domain import JobIsFinal, apply_event, request_cancel, submitted_view
from services.ingest.jobs.request_rules import parse_duration, request_fingerprint
from services.ingest.jobs.sweep_rules import SweepPolicy, sweep
from tests.ingest.test_read_model import EVENTS, JOB, SPEC, T0, views_in_every_order

CANCELED = JobCanceled(job_id=JOB, tenant_id="t", reason="canceled by the client")
RESERVED, SETTLED = EVENTS[0], EVENTS[4]


def settled(view):
    """The view once the ledger has reserved and settled: a final state shows only then."""
    for event in (RESERVED, SETTLED):
        view = apply_event(view, event, at=T0)
    return view


def test_a_canceled_job_stays_canceled_and_shows_no_late_outputs():
    views = views_in_every_order([CANCELED, *EVENTS])  # canceled, and a whole delivery arriving late
    for view in views:
        assert view.state in ("canceled", "succeeded")  # the first terminal event wins
        assert (view.outputs == []) == (view.state == "canceled")
    canceled_first = submitted_view(SPEC)
    for event in (CANCELED, EVENTS[3]):
        canceled_first = apply_event(canceled_first, event, at=T0)
    canceled_first = settled(canceled_first)
    assert canceled_first.state == "canceled" and canceled_first.outputs == []
    assert canceled_first.reasons["canceled"] == "canceled by the client"
    assert canceled_first.failure.code == "canceled"


def test_cancel_is_idempotent_and_refused_once_final():
    view, event = request_cancel(submitted_view(SPEC), T0, reason="client")
    assert event is not None and event.requested_at == T0 and view.cancel_requested_at == T0
    again, second = request_cancel(view, T0 + timedelta(seconds=1), reason="client")
    assert second is None and again == view
    ended = settled(apply_event(view, CANCELED, at=T0))
    assert request_cancel(ended, T0 + timedelta(seconds=2), reason="client") == (ended, None)  # a retried cancel
    with pytest.raises(JobIsFinal):
        request_cancel(settled(apply_event(submitted_view(SPEC), CANCELED, at=T0)), T0, reason="client")


def test_a_deadline_failure_expires_the_job_and_other_failures_fail_it_at_their_stage():
    expired = settled(apply_event(submitted_view(SPEC), ScoringFailed(job_id=JOB, tenant_id="t", attempt=1,
                          failure_code="deadline_exceeded", reason="too late", scores=[]), at=T0))
    assert expired.state == "expired" and expired.failure.stage == "scoring"
    failed = settled(apply_event(apply_event(apply_event(submitted_view(SPEC), EVENTS[1], at=T0), EVENTS[2], at=T0),
                                 DeliveryFailed(job_id=JOB, tenant_id="t", failure_code="copy_failed",
                         reason="s3 down"), at=T0))
    assert failed.state == "failed" and (failed.failure.code, failed.failure.stage) == ("copy_failed", "delivery")
    closed = JobClosed(job_id=JOB, tenant_id="t", final_state="expired", stuck_in="delivering", reason="no answer")
    swept = settled(apply_event(submitted_view(SPEC), closed, at=T0))
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


POLICY = SweepPolicy(state_deadline_s={"submitted": 60, "delivering": 30}, deadline_grace_s=10, answer_timeout_s=20)


def test_the_sweeper_asks_an_overdue_job_to_end_then_ends_it_when_nobody_answers():
    view = apply_event(submitted_view(SPEC), EVENTS[2], at=T0)  # delivering since T0
    assert sweep(view, T0 + timedelta(seconds=29), policy=POLICY) == (view, None)

    asked, request = sweep(view, T0 + timedelta(seconds=31), policy=POLICY)
    assert isinstance(request, JobCancelRequested) and request.final_state == "expired"
    assert "delivering" in request.reason and asked.cancel_requested_as == "expired"
    assert sweep(asked, T0 + timedelta(seconds=50), policy=POLICY) == (asked, None)  # waits for delivery's answer

    ended, closed = sweep(asked, T0 + timedelta(seconds=52), policy=POLICY)
    assert isinstance(closed, JobClosed) and closed.final_state == "expired" and closed.stuck_in == "delivering"
    assert settled(ended).state == "expired" and ended.failure.stage == "delivering"
    assert sweep(ended, T0 + timedelta(days=1), policy=POLICY) == (ended, None)


def test_an_unanswered_client_cancel_ends_canceled_and_a_job_deadline_gets_its_grace():
    canceled, _ = request_cancel(submitted_view(SPEC), T0, reason="client")
    ended, closed = sweep(canceled, T0 + timedelta(seconds=21), policy=POLICY)
    assert closed.final_state == "canceled" and settled(ended).state == "canceled"
    with_deadline = submitted_view(SPEC.model_copy(update={"deadline_s": 5}))
    assert sweep(with_deadline, T0 + timedelta(seconds=14), policy=POLICY)[1] is None
    assert "deadline of 5 s" in sweep(with_deadline, T0 + timedelta(seconds=16), policy=POLICY)[1].reason


def test_candidates_counts_what_the_router_generated_not_the_plan():
    assert submitted_view(SPEC).candidates == 2  # the plan, until the router reports
    generated = EVENTS[1]  # attempt 1: one candidate
    second = generated.model_copy(update={"attempt": 2, "candidates": [generated.candidates[0]] * 3})
    view = submitted_view(SPEC)
    for event in (generated, second, generated):  # a redelivered attempt counts once
        view = apply_event(view, event, at=T0)
    assert view.candidates == 4 and view.generated == {1: 1, 2: 3}
