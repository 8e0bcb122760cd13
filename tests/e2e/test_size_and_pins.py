"""A job's requested size and model pin, through the five services: candidates are made at
that size and the scorer measures it; a version no provider serves fails the job, at no
charge, instead of running on another version."""


def test_candidates_are_made_at_the_requested_size_and_scored_against_it(tenant_factory):
    tenant = tenant_factory()
    job = tenant.wait_settled([tenant.submit(images=1, candidates=2, seed=4, width=320, height=240)])
    job = next(iter(job.values()))
    assert job["state"] == "succeeded", job["failure"]
    assert (job["width"], job["height"]) == (320, 240)
    for score in job["scores"]:
        for name in ("size", "aspect"):
            dimension = score["dimensions"][name]
            assert dimension["value"] is not None and dimension["passed"], dimension


def test_a_pinned_version_no_provider_serves_fails_the_job_without_charge(tenant_factory):
    tenant = tenant_factory()
    before = tenant.balance()
    job = tenant.wait_settled([tenant.submit(images=1, model="local-painter", model_version="999")])
    job = next(iter(job.values()))
    assert job["state"] == "failed"
    assert job["failure"]["stage"] == "generation"
    assert "999" in job["failure"]["reason"]
    assert job["scores"] == [] and job["outputs"] == []
    assert job["billing"]["charged"] == 0
    assert tenant.balance() == before


def test_a_pinned_version_a_provider_serves_is_generated_on_it(tenant_factory):
    tenant = tenant_factory()
    job = tenant.wait_settled([tenant.submit(images=1, candidates=2, model="local-painter", model_version="1")])
    job = next(iter(job.values()))
    assert job["state"] == "succeeded", job["failure"]
