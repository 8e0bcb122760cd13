"""Plans on the running services: the request rate holds across two ingest replicas (429
with Retry-After and RateLimit headers, the accepted count within rate × time + burst)
while another tenant is served; a job past the plan's concurrent jobs is refused with the
reason and nothing is reserved; a paying tenant's jobs, submitted behind a free tenant's
backlog, run first."""

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from genline_stack.fleet import ServiceFleet
from services.ingest.plans import load_plans
from tests.e2e.conftest import FINAL, LEDGER_ADMIN_TOKEN, Tenant, make_tenant, own_fleet, wait_for_audit
from tests.e2e.test_job_endings import local_provider

FREE = load_plans().plans["free"]  # 5 requests/s, bursts of 10, 3 jobs at once


def hammer(url: str, api_key: str, until: float, answers: list[httpx.Response]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        while time.monotonic() < until:
            answers.append(client.get("/v1/jobs", params={"limit": 1}))


def patiently(tenant: Tenant, path: str) -> dict:
    """GET within the tenant's plan: a 429 waits its Retry-After."""
    while (response := tenant.http.get(path)).status_code == 429:
        time.sleep(int(response.headers["Retry-After"]))
    assert response.status_code == 200, response.text
    return response.json()


def wait_final(tenant: Tenant, job_ids: list[str], timeout_s: float = 180) -> dict[str, dict]:
    deadline, done = time.monotonic() + timeout_s, {}
    while len(done) < len(job_ids) and time.monotonic() < deadline:
        for job_id in set(job_ids) - done.keys():
            job = patiently(tenant, f"/v1/jobs/{job_id}")
            if job["state"] in FINAL and job["billing"]["state"] in ("settled", "rejected"):
                done[job_id] = job
        time.sleep(1)
    assert len(done) == len(job_ids), f"jobs not final after {timeout_s}s"
    return done


def test_the_rate_holds_across_two_replicas_and_spares_other_tenants(tenant_factory, two_ingests):
    hammered, bystander = tenant_factory(credits=0, plan="free"), tenant_factory(credits=0, plan="free")
    answers: list[httpx.Response] = []
    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(url, hammered.api_key, started + 4, answers))
               for url in two_ingests for _ in range(2)]
    for thread in threads:
        thread.start()
    bystander_statuses = []
    while time.monotonic() < started + 4:  # 2 requests a second, well within its own plan
        bystander_statuses.append(bystander.http.get("/v1/jobs", params={"limit": 1}).status_code)
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(accepted) + len(refused) == len(answers)
    assert FREE.burst <= len(accepted) <= FREE.requests_per_s * elapsed + FREE.burst, (len(accepted), elapsed)
    assert refused, f"{len(answers)} requests in {elapsed:.1f}s and none refused"
    problem = refused[0]
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["type"] == "/problems/rate-limited"
    assert int(problem.headers["Retry-After"]) >= 1
    assert problem.headers["RateLimit-Limit"] == str(FREE.burst) and problem.headers["RateLimit-Remaining"] == "0"
    assert int(accepted[-1].headers["RateLimit-Remaining"]) <= FREE.burst
    assert set(bystander_statuses) == {200}, bystander_statuses


def test_a_job_past_the_plans_concurrent_jobs_is_refused_and_nothing_is_reserved(tenant_factory):
    tenant = tenant_factory(credits=1_000, plan="free")
    answers, lock = [], threading.Lock()

    def submit() -> None:
        response = tenant.http.post("/v1/jobs", json={"prompt": "a red bicycle", "images": 1, "candidates": 2})
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 429]
    assert len(accepted) == FREE.concurrent_jobs and len(refused) == 10 - FREE.concurrent_jobs, \
        [(a.status_code, a.text) for a in answers]
    problem = refused[0].json()
    assert problem["type"] == "/problems/concurrent-jobs-limit" and problem["limit"] == FREE.concurrent_jobs
    assert "3 jobs in progress" in problem["detail"] and refused[0].headers["Retry-After"]

    jobs = wait_final(tenant, accepted)
    charged = sum(job["billing"]["charged"] for job in jobs.values())
    assert tenant.balance() == {"posted": 1_000 - charged, "pending": 0, "available": 1_000 - charged}
    listed = patiently(tenant, "/v1/jobs")["data"]
    assert sorted(job["id"] for job in listed) == sorted(accepted)
    # The jobs have ended, so the plan has room again.
    assert tenant.http.post("/v1/jobs", json={"prompt": "a red bicycle"}).status_code == 202


REGISTRY = {
    "tiers": {tier: {"latency_target_s": 60, "success_target": 0.95} for tier in ("stable", "fast", "low-cost")},
    "planning": {"max_candidates": 8, "max_rounds": 2, "round_overhead_s": 1},
    # One call at a time, 5 s each: long enough for jobs submitted during a call to reach the
    # router's queue, where they wait in the order it chooses.
    "providers": {"slow": local_provider("local-painter", 4_000, 5.0, 0.0, batch=1, concurrency=1)},
}


@pytest.fixture(scope="module")
def one_at_a_time(endpoints, tmp_path_factory) -> Iterator[ServiceFleet]:
    with own_fleet(endpoints, tmp_path_factory.mktemp("plans"), "plans", REGISTRY,
                   {"GENLINE_MAX_CONCURRENT_ATTEMPTS": "1"}) as fleet:
        yield fleet


def test_a_paying_tenants_jobs_run_before_a_free_tenants_backlog(endpoints, one_at_a_time):
    free = make_tenant(endpoints, one_at_a_time, credits=1_000, plan="free")
    pro = make_tenant(endpoints, one_at_a_time, credits=1_000, plan="pro")
    try:
        backlog = [free.submit(images=1, candidates=1) for _ in range(FREE.concurrent_jobs)]
        # Until all three are admitted: one runs, the others wait behind it in the router's queue.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [patiently(free, f"/v1/jobs/{job_id}")["state"] for job_id in backlog]
            if "submitted" not in states:
                break
            time.sleep(0.5)
        assert "submitted" not in states and sum(state in FINAL for state in states) <= 1, states
        paid = [pro.submit(images=1, candidates=1) for _ in range(2)]

        finished = {job_id: job["timestamps"]["succeeded"]
                    for tenant, jobs in ((free, backlog), (pro, paid)) for job_id, job in wait_final(tenant, jobs).items()}
        # First in first out would finish the whole free backlog first. By plan, the paid jobs
        # go next once they reach the router (while the first free job runs, on a machine
        # that keeps up), and in any case before the last of the free jobs that were waiting.
        assert max(finished[j] for j in paid) < max(finished[j] for j in backlog), \
            {job_id: ("pro" if job_id in paid else "free", at) for job_id, at in sorted(finished.items(), key=lambda i: i[1])}
    finally:
        free.http.close()
        pro.http.close()


def test_operators_move_a_tenant_to_another_plan_and_it_is_audited(platform):
    admin = {"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}
    tenants_url = f"{platform.ingest_url}/admin/v1/tenants"
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    created = httpx.post(tenants_url, json={"id": tenant_id}, headers=admin)
    assert created.status_code == 201 and created.json()["plan"] == "free", created.text
    moved = httpx.put(f"{tenants_url}/{tenant_id}/plan", json={"plan": "pro"}, headers=admin)
    assert moved.json() == {"id": tenant_id, "plan": "pro", "previous": "free"}, moved.text
    with httpx.Client(base_url=platform.ingest_url, headers={"Authorization": f"Bearer {created.json()['api_key']}"}) as api:
        assert api.get("/v1/jobs").headers["RateLimit-Limit"] == str(load_plans().plans["pro"].burst)
    assert httpx.put(f"{tenants_url}/{tenant_id}/plan", json={"plan": "gold"}, headers=admin).status_code == 422
    assert httpx.put(f"{tenants_url}/t-nobody/plan", json={"plan": "pro"}, headers=admin).status_code == 404
    change = wait_for_audit(platform, tenant_id, "plan.set")
    assert (change["actor"], change["details"]) == ("operator:admin", {"previous": "free", "plan": "pro"})
