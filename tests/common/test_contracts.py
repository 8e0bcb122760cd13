"""Old event versions are read through their upcasters as the newest model."""

from uuid import uuid4

from services.common.contracts import (
    CandidatesGenerated,
    CandidatesScored,
    JobDelivered,
    RegenerationRequested,
    ScoringFailed,
    parse_event,
)

V1_CANDIDATES_GENERATED = {
    "job_id": "9b3c1f3e-0d0a-4a57-8b1e-6a1f6a0b6d2e", "tenant_id": "t", "attempt": 1, "images": 1,
    "started_at": "2026-11-01T10:00:00Z", "cost_micro_usd": 4000,
    "candidates": [{"index": 0, "key": "t/c/0.png", "media_type": "image/png", "size_bytes": 10, "sha256": "ab",
                    "width": 64, "height": 64, "provider": "local-standard", "cost_micro_usd": 4000}],
    "calls": [{"provider": "local-standard", "outcome": "ok", "candidates": 1, "cost_micro_usd": 4000}],
}


def test_a_v1_candidates_generated_reads_as_a_one_stage_attempt_of_stills():
    event = parse_event("genline.candidates.generated.v1", V1_CANDIDATES_GENERATED)
    assert isinstance(event, CandidatesGenerated) and event.event_type.endswith(".v3")  # through v2
    [candidate], [call] = event.candidates, event.calls
    assert (candidate.frames, candidate.duration_ms, candidate.steps) == (1, 0, [])
    assert (call.stage, call.stage_index) == ("generate", 0)

JOB = str(uuid4())
IMAGE_V1 = {"n": 1, "key": "t/2026/11/j/1.png", "url": "u", "expires_at": "2026-11-02T10:00:00Z",
            "sha256": "s", "size_bytes": 10, "media_type": "image/png"}


def test_a_v1_delivery_reads_as_v2_images_of_one_frame_without_thumbnail():
    event = parse_event("genline.job.delivered.v1", {"job_id": JOB, "tenant_id": "t", "requested": 1,
                                                     "images": [IMAGE_V1]})

    assert isinstance(event, JobDelivered) and JobDelivered.event_type == "genline.job.delivered.v2"
    image = event.images[0]
    assert (image.frames, image.watermarked, image.thumbnail_url, image.width) == (1, False, None, None)


def test_a_v1_selection_reads_as_the_newest_without_a_template():
    event = parse_event("genline.candidates.scored.v1", {"job_id": JOB, "tenant_id": "t", "attempt": 1,
                                                         "images": 1, "scores": [], "selected": []})

    assert isinstance(event, CandidatesScored) and event.template is None
    assert CandidatesScored.event_type == "genline.candidates.scored.v4"


def test_a_v3_selection_names_its_selected_scores_among_the_scores_it_carried():
    scores = [SCORE_BEFORE_TIERS | {"index": i, "passed": True, "failed": []} for i in range(3)]
    event = parse_event("genline.candidates.scored.v3", {"job_id": JOB, "tenant_id": "t", "attempt": 1,
                                                         "images": 2, "scores": scores, "selected": [2, 0]})

    assert isinstance(event, CandidatesScored) and [s.index for s in event.selected_scores] == [2, 0]
    assert len(event.scores) == 3


SCORE_BEFORE_TIERS = {"index": 0, "key": "k", "sha256": "s", "size_bytes": 10, "media_type": "image/png",
                      "passed": False, "score": 0.4, "failed": ["sharpness"],
                      "dimensions": {"sharpness": {"value": 3.1, "threshold": 20, "passed": False, "reason": "blurred"}}}


def test_scores_from_before_tiers_read_as_measured_in_full():
    common = {"job_id": JOB, "tenant_id": "t", "attempt": 1, "scores": [SCORE_BEFORE_TIERS]}
    selection = parse_event("genline.candidates.scored.v2", common | {"images": 1, "selected": [], "template": None})
    rework = parse_event("genline.regeneration.requested.v1",
                         common | {"images": 1, "passed": 0, "needed": 1, "reason": "0 of 1 images pass"})
    failure = parse_event("genline.scoring.failed.v1", common | {"failure_code": "no_candidate_passed", "reason": "r"})

    assert (type(selection), type(rework), type(failure)) == (CandidatesScored, RegenerationRequested, ScoringFailed)
    for event in (selection, rework, failure):
        [score] = event.scores
        assert score.not_measured == [] and score.judged and score.failed == ["sharpness"]
