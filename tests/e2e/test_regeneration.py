"""The rework loop, five services as processes: a provider whose candidates mostly fail is
asked again until K pass, within the job's budget; a profile nothing can pass ends in a
failed job, with reasons, that costs nothing.

This fleet has topics and schemas of its own and a single local provider that paints 70 %
of every batch defective while its prior promises 90 %, so the first attempt falls short.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from genline_stack.fleet import ServiceFleet
from services.ledger.pricebook import load_price_book
from tests.e2e.conftest import make_tenant, own_fleet

PRICE = 10  # generic × stable, credits per delivered image
PRICE_PER_CANDIDATE_MICRO_USD = 4_000
FLAKY = {
    "tiers": {tier: {"latency_target_s": 60, "success_target": 0.95} for tier in ("stable", "fast", "low-cost")},
    "planning": {"max_candidates": 64, "max_rounds": 3, "round_overhead_s": 5},
    "providers": {
        "local-flaky": {
            "adapter": "local",
            "models": [{"name": "local-painter", "version": "1"}],
            "capabilities": {"max_side": 2048, "max_megapixels": 4.2, "max_images_per_request": 8},
            "price": {"per_image_micro_usd": PRICE_PER_CANDIDATE_MICRO_USD},
            "concurrency": 8,
            "timeouts": {"submit_s": 5, "overall_s": 30},
            "latency": {"base_s": 0.05, "per_image_s": 0.02},
            "pass_rate_prior": {"mean": 0.9, "strength": 4},
            "local": {"defect_rate": 0.7, "failure_rate": 0.0},
        }
    },
}


@pytest.fixture(scope="module")
def flaky_platform(endpoints, tmp_path_factory) -> Iterator[ServiceFleet]:
    with own_fleet(endpoints, tmp_path_factory.mktemp("rework"), "rework", FLAKY) as fleet:
        yield fleet


@pytest.fixture
def tenant(endpoints, flaky_platform):
    made = make_tenant(endpoints, flaky_platform, credits=1_000)
    yield made
    made.http.close()


def spend_cap_micro_usd(images: int) -> int:
    return load_price_book().at(datetime.now(UTC)).spend_cap("stable", images)


def test_a_provider_whose_candidates_mostly_fail_is_asked_again_until_k_pass(tenant):
    before = tenant.balance()
    job = tenant.wait_settled([tenant.submit(images=4, seed=5)])
    job = next(iter(job.values()))

    assert job["state"] == "succeeded", job["failure"]
    assert len(job["outputs"]) == 4
    assert job["attempts"] >= 2 and len(job["regenerations"]) >= 1
    passed = [s for s in job["scores"] if s["passed"]]
    assert len(job["scores"]) - len(passed) > len(passed)  # mostly failing, as painted
    assert {s["attempt"] for s in job["scores"]} == set(range(1, job["attempts"] + 1))
    assert set(job["selected"]) <= {s["index"] for s in passed}
    assert len({s["index"] for s in job["scores"]}) == len(job["scores"])  # numbered across attempts
    # Within the budget: what the attempts cost, no more than the tier's cap for 4 images.
    assert job["provider_cost_micro_usd"] == len(job["scores"]) * PRICE_PER_CANDIDATE_MICRO_USD
    assert job["provider_cost_micro_usd"] <= spend_cap_micro_usd(4)
    # The user pays by result: 4 delivered images, whatever the rework cost.
    assert job["billing"]["charged"] == 4 * PRICE
    assert before["available"] - tenant.balance()["available"] == 4 * PRICE


def test_a_profile_nothing_can_pass_fails_with_reasons_and_costs_nothing(tenant):
    before = tenant.balance()
    impossible = {"thresholds": {"sharpness": {"min": 1e9}}}
    job = tenant.wait_settled([tenant.submit(images=2, seed=9, quality=impossible)])
    job = next(iter(job.values()))

    assert job["state"] == "failed"
    assert job["failure"]["stage"] == "scoring"
    assert "sharpness" in job["failure"]["reason"]
    assert job["scores"] and not any(s["passed"] for s in job["scores"])
    assert all("sharpness" in s["failed"] for s in job["scores"])
    assert job["attempts"] >= 2  # the loop tried again before giving up
    assert job["provider_cost_micro_usd"] <= spend_cap_micro_usd(2)
    assert job["outputs"] == []
    assert job["billing"]["charged"] == 0
    assert tenant.balance() == before
