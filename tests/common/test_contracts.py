"""Old event versions are read through their upcasters as the newest model."""

from services.common.contracts import CandidatesGenerated, parse_event

V1_CANDIDATES_GENERATED = {
    "job_id": "9b3c1f3e-0d0a-4a57-8b1e-6a1f6a0b6d2e", "tenant_id": "t", "attempt": 1, "images": 1,
    "started_at": "2026-11-01T10:00:00Z", "cost_micro_usd": 4000,
    "candidates": [{"index": 0, "key": "t/c/0.png", "media_type": "image/png", "size_bytes": 10, "sha256": "ab",
                    "width": 64, "height": 64, "provider": "local-standard", "cost_micro_usd": 4000}],
    "calls": [{"provider": "local-standard", "outcome": "ok", "candidates": 1, "cost_micro_usd": 4000}],
}


def test_a_v1_candidates_generated_reads_as_a_one_stage_attempt_of_stills():
    event = parse_event("genline.candidates.generated.v1", V1_CANDIDATES_GENERATED)
    assert isinstance(event, CandidatesGenerated) and event.event_type.endswith(".v2")
    [candidate], [call] = event.candidates, event.calls
    assert (candidate.frames, candidate.duration_ms, candidate.steps) == (1, 0, [])
    assert (call.stage, call.stage_index) == ("generate", 0)
