"""What follows an attempt, decided from the job's scores (pure logic, no servers)."""

import uuid
from datetime import UTC, datetime

from services.common.contracts import (
    CandidateScore,
    CandidatesGenerated,
    CandidatesScored,
    DimensionScore,
    RegenerationRequested,
    ScoringFailed,
)
from services.scorer.domain import decide, rejection_summary

JOB = uuid.uuid4()
BLURRED = DimensionScore(value=3.0, threshold=20, passed=False, reason="sharpness 3 is below the minimum 20 (blurred)")
DARK = DimensionScore(value=0.0, threshold=0.08, passed=False, reason="exposure 0 is below the minimum 0.08 (dark)")
NO_CLIP = DimensionScore(value=None, threshold=0.2, passed=False, reason="prompt_alignment unavailable: no CLIP")


def score(index: int, value: float, failed: tuple[str, ...] = (), attempt: int = 1) -> CandidateScore:
    dimensions = {"sharpness": BLURRED, "exposure": DARK, "prompt_alignment": NO_CLIP}
    return CandidateScore(index=index, attempt=attempt, key=f"k{index}", sha256="s", size_bytes=1,
                          media_type="image/png", passed=not failed, score=value, failed=list(failed),
                          dimensions=dimensions)


def attempt(number: int = 1, images: int = 2, final: bool = False, stop_reason: str | None = None):
    return CandidatesGenerated(job_id=JOB, tenant_id="t", attempt=number, images=images,
                               started_at=datetime.now(UTC), candidates=[], cost_micro_usd=0, final=final,
                               stop_reason=stop_reason)


def test_the_summary_counts_only_the_dimensions_that_rejected_a_candidate():
    scores = [score(0, 0, ("sharpness",)), score(1, 0, ("sharpness", "exposure")), score(2, 1.0)]
    summary = rejection_summary(scores)
    assert summary == ("2 failed sharpness (sharpness 3 is below the minimum 20 (blurred)), "
                       "1 failed exposure (exposure 0 is below the minimum 0.08 (dark))")
    assert "prompt_alignment" not in summary  # unavailable but excused: not why anything failed


def test_k_passing_over_all_attempts_selects_the_best_k_by_score():
    scores = [score(0, 0.5), score(1, 0, ("sharpness",)), score(2, 0.9, attempt=2), score(3, 0.7, attempt=2)]
    outcome = decide(attempt(2), scores, fresh=scores[2:])
    assert isinstance(outcome, CandidatesScored) and outcome.selected == [2, 3]
    # The outcome carries the scores not published before, and the selected ones by name.
    assert outcome.scores == scores[2:] and [s.index for s in outcome.selected_scores] == [2, 3]


def test_too_few_passing_asks_for_the_shortfall_with_this_attempts_scores():
    earlier, now = [score(0, 0.5)], [score(1, 0, ("sharpness",)), score(2, 0, ("exposure",))]
    outcome = decide(attempt(2, images=3), earlier + now, fresh=now)
    assert isinstance(outcome, RegenerationRequested)
    assert (outcome.passed, outcome.needed, outcome.scores) == (1, 2, now)
    assert outcome.reason.startswith("1 of 3 images pass after attempt 2; this attempt: 1 failed sharpness")


def test_a_final_attempt_delivers_what_passed():
    scores = [score(0, 0, ("sharpness",)), score(1, 0.4)]
    outcome = decide(attempt(final=True, images=3), scores, fresh=scores)
    assert isinstance(outcome, CandidatesScored) and outcome.selected == [1] and outcome.images == 3


def test_a_final_attempt_with_nothing_passing_fails_with_the_reasons_and_the_routers():
    scores = [score(0, 0, ("sharpness",)), score(1, 0, ("sharpness",))]
    outcome = decide(attempt(final=True, stop_reason="cost cap reached"), scores, fresh=scores)
    assert isinstance(outcome, ScoringFailed) and outcome.failure_code == "no_candidate_passed"
    assert outcome.reason == ("no candidate passed: 2 failed sharpness (sharpness 3 is below the minimum 20 (blurred));"
                              " generation stopped: cost cap reached")


def test_a_final_attempt_with_no_candidates_at_all_says_so():
    outcome = decide(attempt(final=True, stop_reason="no provider can generate this template"), [], fresh=[])
    assert isinstance(outcome, ScoringFailed) and outcome.failure_code == "no_candidates"
    assert outcome.reason == "no candidate was generated; generation stopped: no provider can generate this template"


def at_deadline(images: int, min_images: int | None) -> CandidatesGenerated:
    from services.common.contracts import JobSpec

    spec = JobSpec(job_id=JOB, tenant_id="t", template="generic", prompt="p", images=images, candidates=images,
                   seed=1, submitted_at=datetime.now(UTC), deadline_s=5, min_images=min_images)
    return attempt(2, images=images, final=True, stop_reason="deadline_exceeded").model_copy(update={"job": spec})


def test_at_the_deadline_min_images_passing_are_delivered_and_fewer_expire_the_job():
    scores = [score(0, 0.5), score(1, 0.9), score(2, 0, ("sharpness",))]
    partial = decide(at_deadline(images=4, min_images=2), scores, fresh=scores)
    assert isinstance(partial, CandidatesScored) and partial.selected == [1, 0]
    expired = decide(at_deadline(images=4, min_images=3), scores, fresh=scores)
    assert isinstance(expired, ScoringFailed) and expired.failure_code == "deadline_exceeded"
    assert "at least 3" in expired.reason
    by_default = decide(at_deadline(images=4, min_images=None), scores, fresh=scores)  # min_images = images
    assert isinstance(by_default, ScoringFailed) and by_default.failure_code == "deadline_exceeded"


def test_the_selection_names_the_job_s_template_for_delivery():
    scores = [score(0, 0.5), score(1, 0.9)]
    assert decide(attempt(images=2), scores, fresh=scores).template is None  # an attempt that carries no job
    chosen = decide(at_deadline(images=2, min_images=None), scores, fresh=scores)
    assert isinstance(chosen, CandidatesScored) and chosen.template == "generic"


def test_a_clip_job_s_reasons_count_clips():
    from services.common.contracts import JobSpec, VideoSpec

    job = JobSpec(job_id=JOB, tenant_id="t", template="text-to-video", prompt="p", images=1, candidates=1, seed=1,
                  submitted_at=datetime.now(UTC), video=VideoSpec(duration_s=4))
    clips = attempt(1, images=1).model_copy(update={"job": job})
    outcome = decide(clips, [score(0, 0, ("duration",))], fresh=[score(0, 0, ("duration",))])
    assert isinstance(outcome, RegenerationRequested) and outcome.reason.startswith("0 of 1 clips pass after attempt 1")
