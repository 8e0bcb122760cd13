"""Scores in tiers as a client sees them, on the five services as processes: a blank
candidate is rejected by Tier 1 and its Tier-2 dimension (moderation) is shown as not
measured, in the job view, in the job's event log and in the Python client's model; a job
that asks for every dimension (`quality.score_all`) gets every candidate measured."""

from genline_client import Genline
from services.scorer.dimensions import TIER_ONE


def test_a_blank_candidate_lists_its_tier_one_failures_and_is_not_measured_further(tenant_factory, platform):
    tenant = tenant_factory()
    job_id = tenant.submit(images=2, candidates=8, seed=11)  # the local provider paints one blank, one blurred
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded"

    [blank] = [s for s in job["scores"] if "blank" in s["failed"]]
    failed = blank["failed"]
    assert set(failed) <= set(TIER_ONE) and not blank["passed"] and blank["judged"]
    assert blank["not_measured"] == ["nsfw"]
    nsfw = blank["dimensions"]["nsfw"]
    assert nsfw["value"] is None and not nsfw["passed"]
    assert nsfw["reason"] == f"nsfw unmeasured: rejected at tier 1 by {', '.join(failed)}"
    unjudged = [s for s in job["scores"] if not s["judged"]]
    for score in unjudged:  # two better ones passed: these could not have been selected
        assert not score["passed"] and score["failed"] == [] and score["not_measured"] == ["nsfw"]
        assert score["index"] not in job["selected"]
        assert "measuring stopped once the job had 2 passing" in score["dimensions"]["nsfw"]["reason"]

    events = tenant.http.get(f"/v1/jobs/{job_id}/events").json()["data"]
    [scored] = [e["payload"] for e in events if e["type"] == "attempt.scored"]
    assert {"index": blank["index"], "failed": failed, "not_measured": ["nsfw"]} in scored["rejected"]
    assert scored["not_judged"] == [s["index"] for s in unjudged]

    with Genline(tenant.api_key, platform.ingest_url) as client:
        [candidate] = [c for c in client.jobs.get(job_id).scores if c.index == blank["index"]]
        logged = [e for e in client.jobs.events(job_id) if e.type == "attempt.scored"]
    assert candidate.rejected and candidate.failed == failed and candidate.not_measured == ["nsfw"]
    assert candidate.dimensions["nsfw"]["reason"].startswith("nsfw unmeasured: rejected at tier 1 by ")
    assert logged and logged[0].payload["rejected"] == scored["rejected"]


def test_a_job_that_asks_for_every_dimension_gets_every_candidate_measured(tenant_factory):
    tenant = tenant_factory()
    refused = tenant.http.post("/v1/jobs", json={"prompt": "a lighthouse", "quality": {"score_all": "yes"}})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"

    job_id = tenant.submit(images=2, candidates=8, seed=11, quality={"score_all": True})
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded" and len(job["scores"]) == 8
    assert all(s["judged"] and s["not_measured"] == [] for s in job["scores"])
    assert all(s["dimensions"]["nsfw"]["value"] is not None for s in job["scores"])
    assert sum(not s["passed"] for s in job["scores"]) == 2  # the blank and the blurred one
