"""What the event log tells a client, entry by entry, as events move a job (pure, no I/O)."""

from datetime import timedelta

from services.common.contracts import (
    AttemptStarted,
    JobCanceled,
    JobCancelRequested,
    ProviderCall,
    ReportDeclined,
    ReservationSettled,
)
from services.ingest.jobs.domain import apply_event, submitted_view, with_receipt
from services.ingest.jobs.job_log import entries_for, first_entries
from services.ingest.jobs.view import Change
from services.ingest.receipts.document import ReceiptStamp, receipt_body
from tests.ingest.test_read_model import EVENTS, JOB, SPEC, T0

STARTED = AttemptStarted(job_id=JOB, tenant_id="t", attempt=1, images_needed=1, started_at=T0)
CANCELED = JobCanceled(job_id=JOB, tenant_id="t", reason="canceled by the client")
RELEASED = ReservationSettled(job_id=JOB, tenant_id="t", transfer_id=JOB, reserved=10, charged=0, released=10,
                              delivered_images=0, outcome="canceled")


def log_of(events) -> list:
    """Every entry, in order, from the submission through `events` (event i at T0 + i + 1 s)."""
    view = submitted_view(SPEC)
    log = first_entries(view, T0)
    for i, event in enumerate(events):
        after = apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
        log += entries_for(Change(before=view, after=after, event=event, at=T0 + timedelta(seconds=i + 1)))
        view = after
    return log


def states(log) -> list[str]:
    return [entry.payload["state"] for entry in log if entry.type == "state"]


def test_a_delivered_job_tells_each_state_attempt_and_settlement_in_order():
    log = log_of([EVENTS[0], STARTED, *EVENTS[1:]])
    assert states(log) == ["submitted", "admitted", "generating", "scoring", "delivering", "succeeded"]
    assert [e.type for e in log if e.type != "state"] == [
        "billing.reserved", "attempt.started", "attempt.generated", "attempt.scored", "delivery.published",
        "billing.settled"]
    assert log[-1].type == "state" and log[-2].type == "billing.settled"  # final only once settled
    generated = next(e for e in log if e.type == "attempt.generated").payload
    assert generated["candidates"] == 1 and generated["cost_so_far_micro_usd"] == 5
    scored = next(e for e in log if e.type == "attempt.scored").payload
    assert (scored["scored"], scored["passed"], scored["selected"]) == (1, 1, 1)


def test_generating_is_named_when_the_attempt_start_arrives_with_its_end():
    assert states(log_of(EVENTS))[:4] == ["submitted", "admitted", "generating", "scoring"]


def test_a_canceled_job_ends_with_its_failure_in_the_last_state():
    asked = JobCancelRequested(job_id=JOB, tenant_id="t", reason="canceled by the client", requested_at=T0)
    log = log_of([EVENTS[0], STARTED, asked, CANCELED, RELEASED])
    assert states(log) == ["submitted", "admitted", "generating", "canceled"]
    assert "cancel.requested" in [e.type for e in log]
    assert log[-1].payload["failure"]["code"] == "canceled"


def test_facts_read_after_the_final_state_change_the_view_and_the_log_takes_only_reports():
    generated = EVENTS[1]  # the attempt that crossed the cancel, and its provider's cost
    log = log_of([CANCELED, RELEASED, STARTED, generated, EVENTS[0],
                  ReportDeclined(job_id=JOB, tenant_id="t", n=1, reason="not a delivered image")])
    assert states(log) == ["submitted", "canceled"]
    after_the_end = [e.type for e in log[[e.type for e in log].index("state", 1):]]
    assert after_the_end == ["state", "report.declined"]
    view = submitted_view(SPEC)
    for i, event in enumerate([CANCELED, RELEASED, STARTED, generated]):
        view = apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
    assert view.state == "canceled" and view.provider_cost_micro_usd == 5  # the view still takes the late cost


def test_an_event_that_changes_no_state_adds_only_its_fact():
    view = apply_event(submitted_view(SPEC), EVENTS[0], at=T0)
    again = apply_event(view, STARTED, at=T0)
    assert [e.type for e in entries_for(Change(before=again, after=apply_event(again, STARTED, at=T0), event=STARTED, at=T0))] == ["attempt.started"]


def test_an_attempts_scores_say_why_each_candidate_was_rejected_and_which_were_not_judged():
    from services.common.contracts import CandidatesScored
    from tests.ingest.test_read_model import SCORE

    blank = SCORE.model_copy(update={"index": 1, "passed": False, "score": 0.3, "failed": ["sharpness", "blank"],
                                     "not_measured": ["nsfw"]})
    spare = SCORE.model_copy(update={"index": 2, "passed": False, "score": 0.9, "not_measured": ["nsfw"],
                                     "judged": False})
    scored = CandidatesScored(job_id=JOB, tenant_id="t", attempt=1, images=1, scores=[SCORE, blank, spare],
                              selected=[0])
    log = log_of([EVENTS[0], STARTED, EVENTS[1], scored])
    payload = next(e for e in log if e.type == "attempt.scored").payload
    assert (payload["scored"], payload["passed"]) == (3, 1)
    assert payload["rejected"] == [{"index": 1, "failed": ["sharpness", "blank"], "not_measured": ["nsfw"]}]
    assert payload["not_judged"] == [2]


def test_a_receipt_comes_just_before_the_final_state_when_the_job_passed_another_state_on_the_way():
    # One change (a batch's) takes the job from scoring through delivering to its end.
    before = submitted_view(SPEC)
    for i, event in enumerate([EVENTS[0], STARTED, EVENTS[1]]):
        before = apply_event(before, event, at=T0 + timedelta(seconds=i + 1))
    after = before
    for event in EVENTS[2:]:
        after = apply_event(after, event, at=T0 + timedelta(seconds=9))
    assert after.final

    log = entries_for(Change(before=before, after=with_receipt(after, "ab" * 32), event=EVENTS[4], at=T0 + timedelta(seconds=9)))

    assert [(e.type, e.payload.get("state")) for e in log] == [
        ("billing.settled", None), ("state", "delivering"), ("receipt.issued", None), ("state", "succeeded")]


def test_an_output_refused_before_scoring_is_named_in_the_log_reasons_stages_and_receipt():
    """A hosted clip that came back damaged: refused at the router, billed by its provider, and a
    retake delivered. Both clips are the job's cost; the refused one says which attempt,
    which provider and why."""
    damaged = "bad_output: fal-veo3-fast: the clip is damaged: 0 of its 12 frames decode"
    calls = [ProviderCall(provider="fal-veo3-fast", outcome="error", cost_micro_usd=120_000, refused_outputs=1,
                          detail=damaged),
             ProviderCall(provider="fal-veo3-fast", outcome="ok", candidates=1, cost_micro_usd=120_000)]
    generated = EVENTS[1].model_copy(update={"calls": calls, "cost_micro_usd": 240_000})
    log = log_of([EVENTS[0], STARTED, generated, *EVENTS[2:]])

    entry = next(e for e in log if e.type == "attempt.generated").payload
    assert entry["refused"] == [{"provider": "fal-veo3-fast", "stage": "generate", "outputs": 1,
                                 "cost_micro_usd": 120_000, "reason": damaged}]
    scoring = next(e for e in log if e.type == "state" and e.payload["state"] == "scoring").payload
    assert "1 output refused before scoring" in scoring["reason"] and "damaged" in scoring["reason"]
    view = submitted_view(SPEC)
    for i, event in enumerate([EVENTS[0], generated, *EVENTS[2:]]):
        view = apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
    [stage] = view.stages
    assert (stage.calls, stage.refused_outputs, stage.cost_micro_usd) == (2, 1, 240_000)
    assert view.provider_cost_micro_usd == 240_000
    receipt = receipt_body(view, ReceiptStamp(sequence=1, previous_sha256=None, kid="k", issued_at=T0))
    assert [(s["cost_micro_usd"], s["refused_outputs"]) for s in receipt["provider_cost"]["stages"]] == [(240_000, 1)]
