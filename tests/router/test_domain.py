"""The router's rules without I/O: what an attempt asks for, when a job is done, what a
verdict teaches."""

import uuid
from datetime import UTC, datetime

from services.common.contracts import CandidateScore, JobSpec
from services.router import domain


def spec(**fields) -> JobSpec:
    return JobSpec(**({"job_id": uuid.uuid4(), "tenant_id": "t", "template": "generic", "prompt": "p", "images": 2,
                       "candidates": 5, "seed": 1, "submitted_at": datetime.now(UTC)} | fields))


def verdict(provider: str, passed: bool, attempt: int = 1) -> CandidateScore:
    return CandidateScore(index=0, attempt=attempt, provider=provider, key="k", sha256="s", size_bytes=1,
                          media_type="image/png", passed=passed, score=0.0, dimensions={})


def test_only_the_first_attempt_of_a_client_chosen_n_is_fixed():
    job = domain.JobState(spec(candidates_fixed=True), budget_micro_usd=50_000, spent_micro_usd=20_000,
                          next_index=5)
    first = domain.route_request(job, 1, 2, 512, 512)
    rework = domain.route_request(job, 2, 1, 512, 512)
    assert first.candidates == 5 and rework.candidates is None
    assert rework.start_index == 5 and rework.images_needed == 1
    assert rework.cost_cap_micro_usd == 30_000


def test_no_budget_means_no_cap_and_an_adaptive_n():
    request = domain.route_request(domain.JobState(spec(), budget_micro_usd=0), 1, 2, 64, 64)
    assert request.cost_cap_micro_usd is None and request.candidates is None


def test_a_job_stops_when_attempts_run_out_or_no_candidate_fits_the_budget():
    assert domain.stop_reason(3, 3, None, 1_000) == domain.MAX_ATTEMPTS_REACHED
    assert domain.stop_reason(1, 3, 999, 1_000) == domain.COST_CAP_REACHED
    assert domain.stop_reason(1, 3, 5_000, None) == domain.COST_CAP_REACHED
    assert domain.stop_reason(1, 3, 1_000, 1_000) is None
    assert domain.stop_reason(2, 3, None, None) is None


def test_verdicts_are_counted_per_provider_for_one_attempt_only():
    scores = [verdict("a", True), verdict("a", False), verdict("b", False), verdict("a", True, attempt=2),
              verdict("", True)]
    assert domain.verdicts_by_provider(scores, 1) == {"a": (1, 1), "b": (0, 1)}
    assert domain.verdicts_by_provider(scores, 2) == {"a": (1, 0)}


def test_the_jobs_size_and_model_pin_reach_every_attempt():
    job = domain.JobState(spec(width=320, height=240, model="local-painter", model_version="1"), budget_micro_usd=0)
    for attempt in (1, 2):
        request = domain.route_request(job, attempt, 1, 512, 512)
        assert (request.width, request.height) == (320, 240)
        assert (request.model, request.model_version) == ("local-painter", "1")
    default = domain.route_request(domain.JobState(spec(), budget_micro_usd=0), 1, 1, 512, 384)
    assert (default.width, default.height, default.model, default.model_version) == (512, 384, None, None)
