"""The job state machine: events from different topics arrive in any order."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from services.common.contracts import (
    AttemptStarted,
    CandidateRef,
    CandidatesChecked,
    CandidateScore,
    CandidatesGenerated,
    CandidatesScored,
    CreditsReserved,
    DeliveredImage,
    JobDelivered,
    JobSpec,
    RegenerationRequested,
    ReservationSettled,
    ScoringFailed,
)
from services.ingest.jobs.domain import JobView, apply_event, submitted_view
from services.ingest.jobs.job_log import state_changes
from services.ingest.jobs.request_rules import plan_candidates

T0 = datetime(2026, 11, 1, tzinfo=UTC)
JOB = uuid.uuid4()
SPEC = JobSpec(job_id=JOB, tenant_id="t", template="generic", prompt="p", images=1, candidates=2, seed=1,
               submitted_at=T0)
REF = CandidateRef(index=0, key="k", media_type="image/png", size_bytes=1, sha256="s", width=8, height=8,
                   provider="local", cost_micro_usd=5)
SCORE = CandidateScore(index=0, key="k", sha256="s", size_bytes=1, media_type="image/png", passed=True, score=1.0,
                       dimensions={})
IMAGE = DeliveredImage(n=1, key="t/2026/11/j/1.png", url="u", expires_at=T0, sha256="s", size_bytes=1,
                       media_type="image/png")
EVENTS = [
    CreditsReserved(job_id=JOB, tenant_id="t", job=SPEC, transfer_id=uuid.uuid4(), amount=10, unit_price=10),
    CandidatesGenerated(job_id=JOB, tenant_id="t", attempt=1, images=1, started_at=T0, candidates=[REF],
                        cost_micro_usd=5),
    CandidatesScored(job_id=JOB, tenant_id="t", attempt=1, images=1, scores=[SCORE], selected=[0]),
    JobDelivered(job_id=JOB, tenant_id="t", requested=1, images=[IMAGE]),
    ReservationSettled(job_id=JOB, tenant_id="t", transfer_id=uuid.uuid4(), reserved=10, charged=10, released=0,
                       delivered_images=1),
]


def views_in_every_order(events) -> list:
    """The view after the events in every order; event i happens at T0 + i + 1 seconds."""
    views = []
    for order in itertools.permutations(range(len(events))):
        view = submitted_view(SPEC)
        for i in order:
            view = apply_event(view, events[i], at=T0 + timedelta(seconds=i + 1))
        views.append(view)
    return views


def test_any_arrival_order_ends_in_the_same_view():
    views = views_in_every_order(EVENTS)
    assert all(v == views[0] for v in views)
    final = views[0]
    assert final.state == "succeeded" and final.outputs == [IMAGE] and final.billing.charged == 10
    assert final.scores == [SCORE] and final.provider_cost_micro_usd == 5
    assert list(final.timestamps) != [] and final.timestamps["delivering"] == T0 + timedelta(seconds=3)


def test_a_final_state_is_never_left():
    view = submitted_view(SPEC)
    for i in (3, 2, 4, 1, 0):
        view = apply_event(view, EVENTS[i], at=T0 + timedelta(seconds=i))
    assert view.state == "succeeded"
    assert apply_event(view, EVENTS[1], at=T0 + timedelta(seconds=9)).state == "succeeded"


def test_partial_delivery_is_partially_succeeded():
    partial = JobDelivered(job_id=JOB, tenant_id="t", requested=2, images=[IMAGE])
    view = submitted_view(SPEC)
    for event in (*EVENTS[:3], partial, EVENTS[4]):
        view = apply_event(view, event, at=T0)
    assert view.state == "partially_succeeded"


def test_a_job_is_shown_final_only_with_its_scores_selection_outputs_and_billing():
    """Every prefix of every arrival order: the final state shows only with all it implies."""
    for order in itertools.permutations(range(len(EVENTS))):
        view = submitted_view(SPEC)
        for step, i in enumerate(order, start=1):
            view = apply_event(view, EVENTS[i], at=T0 + timedelta(seconds=i + 1))
            if view.final:
                assert view.scores == [SCORE] and view.selected == [0] and view.outputs == [IMAGE]
                assert view.billing.state == "settled" and view.billing.charged == 10
            assert view.final == (step == len(EVENTS)), f"after {[type(EVENTS[j]).__name__ for j in order[:step]]}"


def test_a_failed_job_is_shown_failed_once_its_credits_are_released():
    failed = ScoringFailed(job_id=JOB, tenant_id="t", attempt=1, failure_code="no_candidate_passed",
                           reason="nothing passed", scores=[SCORE.model_copy(update={"passed": False})])
    released = EVENTS[4].model_copy(update={"charged": 0, "released": 10, "delivered_images": 0})
    held = submitted_view(SPEC)
    for i, event in enumerate((EVENTS[0], EVENTS[1], failed)):
        held = apply_event(held, event, at=T0 + timedelta(seconds=i))
    assert held.state == "scoring" and held.failure.stage == "scoring"
    shown = apply_event(held, released, at=T0 + timedelta(seconds=3))
    assert shown.state == "failed" and shown.billing.released == 10


def test_clients_never_see_the_state_held_back():
    view = apply_event(submitted_view(SPEC), EVENTS[3], at=T0)
    assert view.reached == "succeeded" and view.state == "submitted"
    assert "reached" not in view.model_dump() and "reached" not in view.model_dump_json()
    assert JobView.model_validate_json(view.stored_json()).reached == "succeeded"


def test_candidates_default_to_oversampling_with_a_spare():
    assert plan_candidates(1, None, oversample=1.5) == 2
    assert plan_candidates(4, None, oversample=1.5) == 6
    assert plan_candidates(4, 4, oversample=1.5) == 4


def test_a_rework_loop_keeps_every_attempts_scores_in_any_arrival_order():
    rejected = SCORE.model_copy(update={"index": 1, "passed": False, "failed": ["sharpness"]})
    accepted = SCORE.model_copy(update={"index": 2, "attempt": 2})
    loop = [
        CandidatesGenerated(job_id=JOB, tenant_id="t", attempt=1, images=1, started_at=T0,
                            candidates=[REF.model_copy(update={"index": 1})], cost_micro_usd=5),
        RegenerationRequested(job_id=JOB, tenant_id="t", attempt=1, images=1, passed=0, needed=1,
                              reason="0 of 1 images pass after attempt 1", scores=[rejected]),
        CandidatesGenerated(job_id=JOB, tenant_id="t", attempt=2, images=1, started_at=T0,
                            candidates=[REF.model_copy(update={"index": 2})], cost_micro_usd=7),
        CandidatesScored(job_id=JOB, tenant_id="t", attempt=2, images=1, scores=[rejected, accepted], selected=[2]),
    ]
    views = views_in_every_order(loop)
    assert all(v == views[0] for v in views)
    view = views[0]
    assert view.timestamps["scoring"] == T0 + timedelta(seconds=1)
    assert view.state == "delivering" and view.attempts == 2 and view.provider_cost_micro_usd == 12
    assert [(r.attempt, r.passed, r.needed) for r in view.regenerations] == [(1, 0, 1)]
    assert [(s.index, s.attempt, s.passed) for s in view.scores] == [(1, 1, False), (2, 2, True)]
    assert view.selected == [2]


def test_regeneration_does_not_move_a_job_back():
    regeneration = RegenerationRequested(job_id=JOB, tenant_id="t", attempt=1, images=1, passed=0, needed=1,
                                         reason="r", scores=[])
    view = apply_event(submitted_view(SPEC), EVENTS[2], at=T0)
    assert apply_event(view, regeneration, at=T0 + timedelta(seconds=1)).state == "delivering"


def test_an_attempt_seen_before_the_reservation_still_shows_the_job_admitted_first():
    """Ingest reads the router's topic and the ledger's in no set order; the router starts
    attempts only for admitted jobs, so every job passes through `admitted`, once."""
    started = AttemptStarted(job_id=JOB, tenant_id="t", attempt=1, images_needed=1, started_at=T0 + timedelta(seconds=2))
    before = submitted_view(SPEC)
    generating = apply_event(before, started, at=T0 + timedelta(seconds=2))
    assert [c["state"] for c in state_changes(before, generating)] == ["admitted", "generating"]
    reserved = apply_event(generating, EVENTS[0], at=T0 + timedelta(seconds=1))
    assert state_changes(generating, reserved) == [] and reserved.billing.state == "reserved"
    assert reserved.reasons["admitted"] == "10 credits reserved"  # the earlier of the two is kept


def test_progress_never_goes_back_when_chunks_are_checked_out_of_order():
    """The scorer checks a job's chunks side by side: a check that counted fewer can arrive
    after one that counted more. The job's progress keeps what was counted."""
    def checked(generated: int, scored: int, passing: int) -> CandidatesChecked:
        return CandidatesChecked(job_id=JOB, tenant_id="t", attempt=1, images=60, scores=[], candidates=240,
                                 generated=generated, scored=scored, passing=passing)

    view = apply_event(submitted_view(SPEC), EVENTS[0], at=T0)
    view = apply_event(view, checked(192, 160, 40), at=T0 + timedelta(seconds=1))
    view = apply_event(view, checked(160, 128, 30), at=T0 + timedelta(seconds=2))

    assert view.progress is not None
    assert (view.progress.generated, view.progress.scored, view.progress.passing, view.progress.needed) == \
        (192, 160, 40, 20)
    view = apply_event(view, checked(224, 192, 45), at=T0 + timedelta(seconds=3))
    assert (view.progress.generated, view.progress.scored, view.progress.passing) == (224, 192, 45)


def test_the_read_model_keeps_a_sealed_prompt_sealed_and_an_erased_one_as_erased():
    from services.common.sealing import ERASED, JobField, new_data_key, open_sealed, seal
    from services.ingest.jobs.domain import erased

    key, marker = new_data_key(), f"kept-out-{uuid.uuid4().hex}"
    sealed = seal(key, JobField(JOB, "prompt"), text=f"a harbour {marker}")
    view = submitted_view(SPEC.model_copy(update={"prompt": sealed}), prompt=f"a harbour {marker}")

    stored = view.stored_json()
    kept = JobView.model_validate_json(stored)

    assert marker not in stored and kept.prompt == ""
    assert open_sealed(key, JobField(JOB, "prompt"), sealed=kept.sealed_prompt).endswith(marker)
    gone = erased(kept, T0)
    assert (gone.prompt, gone.sealed_prompt) == (ERASED, None) and ERASED in gone.stored_json()
