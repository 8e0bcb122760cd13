"""The router's rules without I/O: what an attempt asks for, when a job is done, what a
verdict teaches."""

import uuid
from datetime import UTC, datetime

from services.common.contracts import CandidateScore, JobSpec
from services.router import domain


def spec(**fields) -> JobSpec:
    return JobSpec(**({"job_id": uuid.uuid4(), "tenant_id": "t", "template": "generic", "prompt": "p", "images": 2,
                       "candidates": 5, "seed": 1, "submitted_at": datetime.now(UTC)} | fields))


def verdict(provider: str, passed: bool, attempt: int = 1, judged: bool = True, failed: tuple[str, ...] = (),
            not_measured: tuple[str, ...] = ()) -> CandidateScore:
    return CandidateScore(index=0, attempt=attempt, provider=provider, key="k", sha256="s", size_bytes=1,
                          media_type="image/png", passed=passed, score=0.0, dimensions={}, judged=judged,
                          failed=list(failed), not_measured=list(not_measured))


def test_only_the_first_attempt_of_a_client_chosen_n_is_fixed():
    job = domain.AdmittedJob(spec=spec(candidates_fixed=True), budget_micro_usd=50_000, spent_micro_usd=20_000,
                          next_index=5)
    first = domain.route_request(job, domain.AttemptStart(number=1, images_needed=2, width=512, height=512))
    rework = domain.route_request(job, domain.AttemptStart(number=2, images_needed=1, width=512, height=512))
    assert first.candidates == 5 and rework.candidates is None
    assert rework.start_index == 5 and rework.images_needed == 1
    assert rework.cost_cap_micro_usd == 30_000


def test_no_budget_means_no_cap_and_an_adaptive_n():
    request = domain.route_request(domain.AdmittedJob(spec=spec(), budget_micro_usd=0), domain.AttemptStart(number=1, images_needed=2, width=64, height=64))
    assert request.cost_cap_micro_usd is None and request.candidates is None


def test_a_job_stops_when_attempts_run_out_or_no_candidate_fits_the_budget():
    assert domain.stop_reason(3, 3, outlook=domain.Outlook(None, 1_000)) == domain.MAX_ATTEMPTS_REACHED
    assert domain.stop_reason(1, 3, outlook=domain.Outlook(999, 1_000)) == domain.COST_CAP_REACHED
    assert domain.stop_reason(1, 3, outlook=domain.Outlook(5_000, None)) == domain.COST_CAP_REACHED
    assert domain.stop_reason(1, 3, outlook=domain.Outlook(1_000, 1_000)) is None
    assert domain.stop_reason(2, 3, outlook=domain.Outlook(None, None)) is None


def test_verdicts_are_counted_per_provider_for_one_attempt_only():
    scores = [verdict("a", True), verdict("a", False), verdict("b", False), verdict("a", True, attempt=2),
              verdict("", True)]
    assert domain.verdicts_by_provider(scores, 1) == {"a": (1, 1), "b": (0, 1)}
    assert domain.verdicts_by_provider(scores, 2) == {"a": (1, 0)}


def test_candidates_left_without_a_verdict_count_as_those_that_passed_tier_one():
    """Of provider a's judged candidates that passed Tier 1, one of two passed (one failed
    nsfw; a face check or a forbidden face counts the same): its two candidates without a
    verdict count half passed; its Tier-1 rejections count as failed. The quality breakers
    see only verdicts."""
    unjudged = verdict("a", False, judged=False, not_measured=("faces", "nsfw"))
    scores = [verdict("a", False, failed=("blank",), not_measured=("nsfw",)), verdict("a", True),
              verdict("a", False, failed=("nsfw",)), unjudged, unjudged, verdict("b", False, judged=False),
              verdict("a", False, failed=("sharpness", "forbid:faces>=1"), not_measured=("nsfw",))]
    assert domain.verdicts_by_provider(scores, 1) == {"a": (2.0, 4.0)}
    assert [v.passed for v in domain.quality_verdicts(scores, 1)["a"]] == [False, True, False, False]
    later = [verdict("c", True), verdict("c", False, failed=("forbid:faces>=1",)),
             verdict("c", False, failed=("eyes_open", "skin_tone")), verdict("c", True), verdict("c", False, judged=False)]
    assert domain.verdicts_by_provider(later, 1) == {"c": (2.5, 2.5)}


def test_the_jobs_size_and_model_pin_reach_every_attempt():
    job = domain.AdmittedJob(spec=spec(width=320, height=240, model="local-painter", model_version="1"), budget_micro_usd=0)
    for attempt in (1, 2):
        request = domain.route_request(job, domain.AttemptStart(number=attempt, images_needed=1, width=512, height=512))
        assert (request.width, request.height) == (320, 240)
        assert (request.model, request.model_version) == ("local-painter", "1")
    default = domain.route_request(domain.AdmittedJob(spec=spec(), budget_micro_usd=0), domain.AttemptStart(number=1, images_needed=1, width=512, height=384))
    assert (default.width, default.height, default.model, default.model_version) == (512, 384, None, None)


def test_the_time_left_to_the_deadline_reaches_the_engine_and_stops_the_job_once_past():
    from datetime import timedelta

    job = domain.AdmittedJob(spec=spec(deadline_s=60), budget_micro_usd=0)
    start = domain.AttemptStart(number=1, images_needed=2, width=512, height=512, now=job.spec.submitted_at + timedelta(seconds=45))
    request = domain.route_request(job, start)
    assert request.time_left_s == 15
    no_deadline = domain.route_request(domain.AdmittedJob(spec=spec(), budget_micro_usd=0),
                                       domain.AttemptStart(number=1, images_needed=2, width=512, height=512, now=datetime.now(UTC)))
    assert no_deadline.time_left_s is None
    assert domain.stop_reason(1, 3, outlook=domain.Outlook(None, None, time_left_s=-0.1)) == "deadline_exceeded"
    assert domain.stop_reason(1, 3, outlook=domain.Outlook(None, None, time_left_s=10)) is None


def test_a_call_reports_the_pinned_model_it_was_made_with(tmp_path):
    import yaml

    from services.router.providers.registry import load_registry
    from services.router.routing_types import CallRecord
    from tests.router.stubs import Stub, StubMarket, stub_provider

    entry = stub_provider(Stub("fal", "http://127.0.0.1:9", StubMarket()), price=1, versions=("1", "2"))
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {"two-versions": entry}}))
    registry = load_registry(str(tmp_path / "providers.yaml"))
    call = CallRecord(provider="two-versions", start_index=0, count=1, expected_cost_micro_usd=1,
                      actual_cost_micro_usd=1, expected_latency_s=0.1, latency_s=0.1, outcome="ok")
    pinned = domain.route_request(domain.AdmittedJob(spec=spec(model="stub-model", model_version="2"), budget_micro_usd=0),
                                  domain.AttemptStart(number=1, images_needed=1, width=512, height=512))
    (published,) = domain.provider_calls([call], registry, route=pinned)
    assert (published.model, published.model_version) == ("stub-model", "2")

    # A call whose outputs were refused before scoring says so, with their bill and why.
    refused = CallRecord(provider="two-versions", start_index=0, count=2, expected_cost_micro_usd=1,
                         actual_cost_micro_usd=240_000, expected_latency_s=0.1, latency_s=0.1, outcome="bad_output",
                         error="bad_output: two-versions: the clip is damaged")
    (published,) = domain.provider_calls([refused], registry, route=pinned)
    assert (published.outcome, published.candidates, published.refused_outputs, published.cost_micro_usd) == (
        "error", 0, 2, 240_000) and "damaged" in published.detail
