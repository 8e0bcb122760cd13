"""Fair turns at every stage that queues work, through the running services: while one
tenant's flood of 100 jobs of 8 images (800 candidates) drains through the router, the scorer
and delivery's rendering workers, another tenant's one-image jobs, submitted after the whole
flood, are final before a tenth of the flood's jobs are; and a tenant on a lower plan than the
flood's is still served before the flood ends. Only the order in which jobs became final, and
what each delivered, are compared, never a duration (bench/delivery.py measures the times)."""

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from genline_stack.fleet import ServiceFleet
from tests.e2e.conftest import Tenant, make_tenant, own_fleet
from tests.e2e.test_job_endings import local_provider
from tests.e2e.test_plans import patiently, wait_final

pytestmark = pytest.mark.own_stack  # a fleet of its own, restarted or flooded

FLOOD_JOBS, FLOOD_IMAGES = 100, 8  # 800 candidates, 800 delivered images
SMALL = {"width": 256, "height": 256}  # the work per candidate is not what this test is about
REGISTRY = {
    "tiers": {tier: {"latency_target_s": 60, "success_target": 0.95} for tier in ("stable", "fast", "low-cost")},
    "planning": {"max_candidates": 8, "max_rounds": 1, "round_overhead_s": 1},
    # No defects: every job is one attempt, so each tenant's jobs take the same path.
    "providers": {"painter": local_provider("local-painter", 4_000, None, 0.0)},
}


@pytest.fixture(scope="module")
def fleet(endpoints, tmp_path_factory) -> Iterator[ServiceFleet]:
    with own_fleet(endpoints, tmp_path_factory.mktemp("fair"), "fair", REGISTRY) as fleet:
        yield fleet


def finished_at(jobs: dict[str, dict]) -> dict[str, datetime]:
    """When each job became final, as the platform recorded it."""
    return {job_id: datetime.fromisoformat(job["timestamps"][job["state"]]) for job_id, job in jobs.items()}


def wait_admitted(tenant: Tenant, job_ids: list[str], timeout_s: float = 120) -> None:
    """Until the ledger has reserved the jobs' credits: their turn is now the router's to give."""
    deadline = time.monotonic() + timeout_s
    while any(patiently(tenant, f"/v1/jobs/{job_id}")["state"] == "submitted" for job_id in job_ids):
        assert time.monotonic() < deadline, f"jobs not admitted after {timeout_s}s"
        time.sleep(0.5)


def test_other_tenants_are_served_while_a_flood_drains(endpoints, fleet):
    flood = make_tenant(endpoints, fleet, credits=100_000, plan="enterprise")
    same_plan = make_tenant(endpoints, fleet, credits=1_000, plan="enterprise")
    lower_plan = make_tenant(endpoints, fleet, credits=1_000, plan="free")
    tenants: list[Tenant] = [flood, same_plan, lower_plan]
    try:
        # The router is away while the jobs come in, so the whole flood waits in Kafka ahead of the
        # others, whatever the speed of this machine; in partition order they would wait for all of it.
        fleet.stop("router")
        try:
            flooded = [flood.submit(images=FLOOD_IMAGES, candidates=FLOOD_IMAGES, **SMALL) for _ in range(FLOOD_JOBS)]
            mine = [same_plan.submit(images=1, candidates=1, **SMALL) for _ in range(3)]
            theirs = [lower_plan.submit(images=1, candidates=1, **SMALL) for _ in range(3)]
            wait_admitted(flood, flooded[-1:]), wait_admitted(same_plan, mine), wait_admitted(lower_plan, theirs)
        finally:
            fleet.restart("router")

        others = wait_final(same_plan, mine, timeout_s=1200) | wait_final(lower_plan, theirs, timeout_s=1200)
        flooded_jobs = wait_final(flood, flooded, timeout_s=1800)
        flood_done = finished_at(flooded_jobs)
        mine_done, theirs_done = finished_at({j: others[j] for j in mine}), finished_at({j: others[j] for j in theirs})
        in_order = sorted(flood_done.values())
        # The flood's tenant on the same plan: each of the other's jobs before a tenth of the flood's.
        tenth = in_order[FLOOD_JOBS // 10 - 1]
        assert max(mine_done.values()) < tenth, (sorted(mine_done.values()), in_order[:FLOOD_JOBS // 10])
        # The flood's tenant on a higher plan (a larger share, not the only one): served before the flood ends.
        assert max(theirs_done.values()) < in_order[-1], (sorted(theirs_done.values()), in_order[-1])
        assert {job["state"] for job in others.values()} == {"succeeded"}
        assert [len(job["outputs"]) for job in others.values()] == [1] * 6
        assert {job["state"] for job in flooded_jobs.values()} == {"succeeded"}
        assert sum(len(job["outputs"]) for job in flooded_jobs.values()) == FLOOD_JOBS * FLOOD_IMAGES
    finally:
        for tenant in tenants:
            tenant.http.close()

