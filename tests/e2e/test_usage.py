"""`GET /v1/usage` on the running services equals what the limits enforce: a tenant on the
free plan spends its daily images, its usage says so, and the next job is refused (429)
with the very counts the usage showed. Every request the test made is in `requests_today`."""

import time

import psycopg

from services.common.contracts import FINAL_STATES
from services.ingest.plans import load_plans

FREE = load_plans().plans["free"]


class Counted:
    """The tenant's API, each answered request counted; a request the rate refused (which is
    not answered, nor counted) waits its Retry-After and goes again."""

    def __init__(self, tenant) -> None:
        self.tenant, self.answered = tenant, 0

    def __call__(self, method: str, path: str, **kwargs):
        while True:
            response = self.tenant.http.request(method, path, **kwargs)
            if response.status_code == 429 and response.json()["type"] == "/problems/rate-limited":
                time.sleep(int(response.headers["Retry-After"]))
                continue
            self.answered += 1
            return response


def wait_final(database_url: str, job_ids: list[str], timeout_s: float = 180) -> None:
    """Read from ingest's table, so that waiting spends none of the tenant's request rate."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            states = [row[0] for row in conn.execute("SELECT state FROM ingest.jobs WHERE id = ANY(%s::uuid[])",
                                                     [job_ids])]
            if len(states) == len(job_ids) and set(states) <= set(FINAL_STATES):
                return
            assert time.monotonic() < deadline, f"jobs not final after {timeout_s}s: {states}"
            time.sleep(0.5)


def submit_and_cancel(api: Counted, images: int) -> str:
    """A job that counts its images against the day (a canceled job counts: it was asked for)."""
    response = api("POST", "/v1/jobs", json={"prompt": "a blue kite", "images": images, "candidates": images})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert api("POST", f"/v1/jobs/{job_id}/cancel").status_code in (202, 409)  # 409: it finished first
    return job_id


def test_usage_counts_what_the_limits_enforce_once_the_free_plan_s_daily_images_are_spent(tenant_factory, endpoints):
    tenant = tenant_factory(credits=10_000, plan="free")
    api = Counted(tenant)
    fresh = api("GET", "/v1/usage").json()
    assert fresh["plan"] == {"name": "free"} | FREE.model_dump(exclude={"name"})
    assert (fresh["images_today"], fresh["jobs_in_progress"], fresh["requests_today"]) == (0, 0, 1)

    sizes = [16] * (FREE.images_per_day // 16) + [FREE.images_per_day % 16]
    for start in range(0, len(sizes), FREE.concurrent_jobs):  # never more jobs at once than the plan allows
        batch = [submit_and_cancel(api, images) for images in sizes[start:start + FREE.concurrent_jobs]]
        wait_final(endpoints.database_url, batch)

    usage = api("GET", "/v1/usage")
    assert usage.status_code == 200, usage.text
    usage = usage.json()
    assert usage["images_today"] == FREE.images_per_day == sum(sizes)
    assert usage["jobs_in_progress"] == 0 and usage["credits_held"] == 0
    assert usage["requests_today"] == api.answered
    bars = {bar["name"]: bar for bar in usage["limits"]}
    assert bars["images_per_day"] | {"resets_at": None} == {
        "name": "images_per_day", "used": FREE.images_per_day, "limit": FREE.images_per_day, "remaining": 0,
        "resets_at": None}
    assert bars["images_per_day"]["resets_at"] == usage["resets_at"] and usage["resets_at"].endswith("T00:00:00Z")
    assert bars["concurrent_jobs"] == {"name": "concurrent_jobs", "used": 0, "limit": FREE.concurrent_jobs,
                                       "remaining": FREE.concurrent_jobs, "resets_at": None}

    refused = api("POST", "/v1/jobs", json={"prompt": "one more", "images": 1})
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "/problems/daily-images-limit"
    assert (problem["used"], problem["limit"]) == (usage["images_today"], bars["images_per_day"]["limit"])
    assert api("GET", "/v1/usage").json()["requests_today"] == api.answered  # the refused job was answered too


def test_usage_sums_each_day_from_the_tenants_receipts(tenant_factory, endpoints):
    tenant = tenant_factory(1_000)
    ids = [tenant.submit(images=images, candidates=images + 1, seed=images) for images in (1, 2)]
    jobs = tenant.wait_settled(ids)
    chain = tenant.http.get("/v1/receipts").json()["data"]
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:  # one job ended two days ago
        conn.execute("UPDATE ingest.receipts SET issued_at = issued_at - interval '2 days' WHERE job_id = %s",
                     [ids[0]])

    week = tenant.http.get("/v1/usage", params={"days": 7}).json()["daily"]
    today = tenant.http.get("/v1/usage", params={"days": 1}).json()["daily"]
    too_many = tenant.http.get("/v1/usage", params={"days": 367})

    assert len(week) == 7 and [day["date"] for day in week] == sorted(day["date"] for day in week)
    assert today == week[-1:]  # today is the last day of any range
    by_job = {doc["receipt"]["job_id"]: doc["receipt"] for doc in chain}
    expected = [{"jobs": 1, "images": by_job[job]["images"]["delivered"], "credits": by_job[job]["credits"]["charged"]}
                for job in ids]
    assert {k: week[-3][k] for k in ("jobs", "images", "credits")} == expected[0]
    assert {k: week[-1][k] for k in ("jobs", "images", "credits")} == expected[1]
    assert sum(day["credits"] for day in week) == sum(job["billing"]["charged"] for job in jobs.values())
    assert all(day["jobs"] == 0 for n, day in enumerate(week) if n not in (4, 6))
    assert too_many.status_code == 422 and too_many.headers["content-type"] == "application/problem+json"
