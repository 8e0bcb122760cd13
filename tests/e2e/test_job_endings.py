"""Every job ends, five services as processes on a fleet of their own: a cancel stops a
slow generation, or a job waiting for scoring or delivery; a deadline expires a job at no cost, or delivers what passed when the job
allows fewer images; delivery stopped for good leaves the job to the sweeper, which ends it
uncharged and settled once, and nothing changes when delivery comes back; a copy that
keeps failing fails the job at stage delivery, uncharged.

Jobs pin a model to choose their provider: `slow-painter` takes a minute a batch,
`flaky-painter` paints one of every two candidates defective, two at a time, 6 s a call, one
call at once; the rest go to a quick
provider. The sweeper here is impatient: 4 s in `delivering`, 3 s for an answer.
"""

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from genline_stack.fleet import ServiceFleet
from tests.e2e.conftest import make_tenant, own_fleet, wait_caught_up

PRICE = 10  # generic × stable, credits per delivered image
FINAL = {"canceled", "expired", "failed", "succeeded", "partially_succeeded", "rejected"}


def local_provider(model: str, price: int, latency_s: float | None, defect_rate: float, batch: int = 8,
                   concurrency: int = 8) -> dict:
    return {"adapter": "local", "models": [{"name": model, "version": "1"}],
            "capabilities": {"max_side": 2048, "max_megapixels": 4.2, "max_images_per_request": batch},
            "price": {"per_image_micro_usd": price}, "concurrency": concurrency,
            "timeouts": {"submit_s": 5, "overall_s": 120},
            "latency": {"base_s": latency_s or 0.05, "per_image_s": 0.0},
            "pass_rate_prior": {"mean": 0.9, "strength": 4},
            "local": {"defect_rate": defect_rate, "failure_rate": 0.0, "latency_s": latency_s}}


REGISTRY = {
    "tiers": {tier: {"latency_target_s": 20, "success_target": 0.95} for tier in ("stable", "fast", "low-cost")},
    "planning": {"max_candidates": 64, "max_rounds": 3, "round_overhead_s": 1},
    "providers": {"quick": local_provider("local-painter", 4_000, None, 0.0),
                  "slow": local_provider("slow-painter", 9_000, 60.0, 0.0),
                  "flaky": local_provider("flaky-painter", 8_000, 6.0, 0.8, batch=2, concurrency=1)},
}
SWEEPER = {"GENLINE_SWEEP_INTERVAL_S": "0.5", "GENLINE_CANCEL_ANSWER_TIMEOUT_S": "3", "GENLINE_DEADLINE_GRACE_S": "30",
           "GENLINE_STATE_DEADLINE_S": '{"submitted": 120, "admitted": 120, "generating": 120, "scoring": 120,'
                                       ' "delivering": 4}',
           "GENLINE_COPY_ATTEMPTS": "2", "GENLINE_COPY_BACKOFF_S": "0.2"}


@pytest.fixture(scope="module")
def fleet(endpoints, tmp_path_factory) -> Iterator[ServiceFleet]:
    with own_fleet(endpoints, tmp_path_factory.mktemp("endings"), "ends", REGISTRY, SWEEPER) as fleet:
        yield fleet


@pytest.fixture
def tenant(endpoints, fleet):
    made = make_tenant(endpoints, fleet, credits=1_000)
    yield made
    made.http.close()


def wait_for(tenant, job_id: str, states: set[str], timeout_s: float = 90) -> dict:
    """Until the job is in one of `states` (and, if final, its billing closed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = tenant.job(job_id)
        if job["state"] in states and (job["state"] not in FINAL or job["billing"]["state"] in ("settled", "rejected")):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: {tenant.job(job_id)}")


def settlements(endpoints, fleet, job_id: str) -> int:
    schema = fleet.schema("ledger")
    with psycopg.connect(endpoints.database_url) as conn:
        return conn.execute(f'SELECT count(*) FROM "{schema}".entries e JOIN "{schema}".transfers t'
                            " ON t.id = e.transfer_id WHERE e.kind IN ('charge', 'release') AND t.job_id = %s",
                            [job_id]).fetchone()[0]


def test_cancel_while_a_slow_provider_generates_ends_the_job_canceled_and_free(tenant, endpoints, fleet):
    job_id = tenant.submit(images=1, candidates=2, model="slow-painter", seed=1)
    wait_for(tenant, job_id, {"admitted", "generating"})
    time.sleep(1)  # the router has called the provider

    assert tenant.http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_for(tenant, job_id, FINAL, timeout_s=30)  # long before the minute the provider takes

    assert job["state"] == "canceled" and job["outputs"] == []
    assert job["billing"]["charged"] == 0 and job["billing"]["released"] == PRICE
    assert tenant.balance() == {"posted": 1_000, "pending": 0, "available": 1_000}
    assert settlements(endpoints, fleet, job_id) == 1


@pytest.mark.parametrize("stopped, state", [("scorer", "scoring"), ("delivery", "delivering")])
def test_cancel_while_scoring_or_delivering_ends_the_job_canceled_and_free(tenant, endpoints, fleet, stopped, state):
    """With the service that owns the state stopped, the job waits there for the cancel; it
    ends canceled (delivery answers, or the sweeper when delivery itself is stopped), and
    the service, back, changes nothing."""
    fleet.kill(stopped)
    try:
        job_id = tenant.submit(images=1, candidates=2, seed=10)
        wait_for(tenant, job_id, {state})
        assert tenant.http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        job = wait_for(tenant, job_id, FINAL, timeout_s=60)
    finally:
        fleet.restart(stopped)
    assert job["state"] == "canceled" and job["outputs"] == []
    assert job["billing"]["charged"] == 0 and job["billing"]["released"] == PRICE
    wait_caught_up(fleet)  # the service, back, has applied the job's events

    after = tenant.job(job_id)
    assert after["state"] == "canceled" and after["outputs"] == [] and after["billing"] == job["billing"]
    assert settlements(endpoints, fleet, job_id) == 1
    assert tenant.balance() == {"posted": 1_000, "pending": 0, "available": 1_000}


def test_a_slow_provider_past_the_deadline_expires_the_job_at_no_cost(tenant):
    job_id = tenant.submit(images=1, candidates=2, model="slow-painter", seed=2, deadline_s=3)

    job = wait_for(tenant, job_id, FINAL, timeout_s=60)

    assert job["state"] == "expired", job["failure"]
    assert job["failure"]["code"] == "deadline_exceeded" and job["failure"]["stage"] == "generation"
    assert job["billing"]["charged"] == 0 and tenant.balance()["available"] == 1_000


def test_at_the_deadline_min_images_passing_are_delivered_and_charged_per_image(tenant):
    response = tenant.http.post("/v1/jobs", json={"prompt": "a red bicycle", "images": 4, "candidates": 4,
                                                  "min_images": 1, "model": "flaky-painter", "seed": 3},
                                headers={"Cancel-After": "14s"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    job = wait_for(tenant, job_id, FINAL, timeout_s=90)

    assert job["state"] == "partially_succeeded", job["failure"]
    # One call takes 6 s and the deadline comes after 14: one or two calls' candidates (one of
    # two passes) are all the job gets before the router stops, never the four it asked for.
    assert job["deadline_s"] == 14 and 1 <= len(job["outputs"]) <= 2
    assert job["billing"]["charged"] == len(job["outputs"]) * PRICE
    assert tenant.balance()["available"] == 1_000 - len(job["outputs"]) * PRICE


def test_delivery_gone_for_good_leaves_the_job_to_the_sweeper_which_ends_it_once(tenant, endpoints, fleet):
    fleet.kill("delivery")
    try:
        job_id = tenant.submit(images=1, candidates=2, seed=4)
        wait_for(tenant, job_id, {"delivering"})

        job = wait_for(tenant, job_id, FINAL, timeout_s=60)

        assert job["state"] == "expired" and job["failure"]["stage"] == "delivering"
        assert job["billing"]["charged"] == 0 and job["billing"]["released"] == PRICE
        assert settlements(endpoints, fleet, job_id) == 1
    finally:
        fleet.restart("delivery")
    wait_caught_up(fleet)  # delivery, back, has applied the job's events: its images, the request to end it

    after = tenant.job(job_id)
    assert after["state"] == "expired" and after["outputs"] == [] and after["billing"] == job["billing"]
    assert settlements(endpoints, fleet, job_id) == 1
    assert tenant.balance() == {"posted": 1_000, "pending": 0, "available": 1_000}


def test_a_copy_that_keeps_failing_fails_the_job_at_delivery_uncharged(tenant, fleet):
    fleet.service_env["delivery"] = {"GENLINE_PUBLIC_BUCKET": f"missing-{uuid.uuid4().hex[:8]}"}
    fleet.kill("delivery")
    fleet.restart("delivery")
    try:
        job = wait_for(tenant, tenant.submit(images=1, candidates=2, seed=5), FINAL, timeout_s=60)
    finally:
        fleet.service_env.pop("delivery")
        fleet.kill("delivery")
        fleet.restart("delivery")

    assert job["state"] == "failed", job["failure"]
    assert (job["failure"]["code"], job["failure"]["stage"]) == ("copy_failed", "delivery")
    assert "2 times" in job["failure"]["reason"]
    assert job["billing"]["charged"] == 0 and tenant.balance()["available"] == 1_000
