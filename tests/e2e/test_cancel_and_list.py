"""Cancel, listing and idempotent submission through the public API, on the five services
as separate processes."""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import psycopg

UNIT_PRICE = 10


def wait_final(tenant, job_id: str, timeout_s: float = 120) -> dict:
    """Until the job is final and its billing closed (settled, or rejected: nothing was held)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = tenant.job(job_id)
        if job["state"] in ("canceled", "expired", "failed", "succeeded", "partially_succeeded", "rejected") \
                and job["billing"]["state"] in ("settled", "rejected"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not final and settled: {tenant.job(job_id)}")


def settlements(database_url: str, schema: str, job_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f'SELECT count(*) FROM "{schema}".entries e JOIN "{schema}".transfers t'
                            " ON t.id = e.transfer_id WHERE e.kind IN ('charge', 'release') AND t.job_id = %s",
                            [job_id]).fetchone()[0]


def test_a_job_canceled_at_once_ends_canceled_and_costs_nothing(tenant_factory, endpoints):
    tenant = tenant_factory(credits=1_000)
    job_id = tenant.submit(images=2, candidates=4, seed=3)
    response = tenant.http.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["id"] == job_id and response.json()["cancel_requested_at"]
    assert tenant.http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202  # asking again is harmless

    job = wait_final(tenant, job_id)

    assert job["state"] == "canceled" and job["outputs"] == []
    assert job["reasons"]["canceled"] == "canceled by the client"
    assert job["billing"]["charged"] in (0, None)
    balance = tenant.balance()
    assert balance["available"] == 1_000 and balance["pending"] == 0
    assert settlements(endpoints.database_url, tenant.ledger_schema, job_id) <= 1  # released once, or never held


def test_a_final_job_cannot_be_canceled_and_stays_as_it_was(tenant_factory):
    tenant = tenant_factory(credits=1_000)
    job_id = tenant.submit(images=1, candidates=2, seed=5)
    done = tenant.wait_settled([job_id])[job_id]
    assert done["state"] == "succeeded"

    response = tenant.http.post(f"/v1/jobs/{job_id}/cancel")

    assert response.status_code == 409 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/job-final" and response.json()["state"] == "succeeded"
    after = tenant.job(job_id)
    assert after["state"] == "succeeded" and after["billing"]["charged"] == UNIT_PRICE
    assert after["cancel_requested_at"] is None
    assert tenant.http.post(f"/v1/jobs/{uuid.uuid4()}/cancel").status_code == 404


def test_listing_pages_through_every_job_once_while_new_ones_arrive(tenant_factory):
    # Without credits every job is rejected at once: the listing is what is tested, not generation.
    tenant, other = tenant_factory(credits=0), tenant_factory(credits=0)
    templates = ("generic", "product")
    with ThreadPoolExecutor(4) as pool:
        existing = list(pool.map(lambda i: tenant.submit(template=templates[i % 2], seed=i), range(250)))
        others = set(pool.map(lambda i: other.submit(seed=i), range(5)))
        late = [pool.submit(tenant.submit, seed=1000 + i) for i in range(20)]
        pages, cursor = [], None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            response = tenant.http.get("/v1/jobs", params=params)
            assert response.status_code == 200, response.text
            pages.append(response.json()["data"])
            cursor = response.json()["next"]
            if cursor is None:
                break
        late_ids = {f.result() for f in late}

    seen = [job["id"] for page in pages for job in page]
    assert all(len(page) <= 100 for page in pages)
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert set(existing) <= set(seen), "a job was skipped"
    assert set(seen) <= set(existing) | late_ids and not set(seen) & others
    # Compared as times: a time on a whole second is written without its fraction (RFC 3339 allows
    # both), which sorts after the same second's others as text.
    created = [datetime.fromisoformat(job["created_at"]) for page in pages for job in page]
    assert created == sorted(created, reverse=True), "not newest first"


def test_listing_filters_by_template_state_and_time_and_refuses_a_forged_cursor(tenant_factory):
    tenant = tenant_factory(credits=0)
    first = [tenant.submit(template="product", seed=i) for i in range(3)]
    middle = tenant.job(first[-1])["created_at"]
    last = [tenant.submit(template="generic", seed=10 + i) for i in range(2)]
    for job_id in first + last:
        wait_final(tenant, job_id)

    def ids(**params) -> list[str]:
        response = tenant.http.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["data"]]

    assert ids(template="product") == first[::-1]
    assert ids(state="rejected", limit=2) == last[::-1]
    assert ids(created_after=middle) == last[::-1]
    assert ids(created_before=middle) == first[:2][::-1]
    assert ids(state="succeeded") == []
    for bad in ({"cursor": "not-a-cursor"}, {"limit": 101}, {"state": "lost"}):
        response = tenant.http.get("/v1/jobs", params=bad)
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"


def test_the_same_json_spaced_differently_with_the_same_key_returns_the_first_job(tenant_factory):
    tenant = tenant_factory(credits=0)
    key = {"Idempotency-Key": str(uuid.uuid4()), "content-type": "application/json"}
    body = {"prompt": "a red bicycle", "images": 1, "seed": 9}
    compact = json.dumps(body, separators=(",", ":"))
    spaced = json.dumps(dict(reversed(body.items())), indent=4)

    first = tenant.http.post("/v1/jobs", content=compact, headers=key)
    again = tenant.http.post("/v1/jobs", content=spaced, headers=key)
    other = tenant.http.post("/v1/jobs", content=json.dumps(body | {"seed": 10}), headers=key)

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"


def test_submissions_racing_with_one_key_make_one_job(tenant_factory):
    # They queue on the tenant's row; those that read the key before the first committed
    # lose the key's binding and are answered, on their second try, with the first job.
    tenant = tenant_factory(credits=0)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"prompt": "a red bicycle", "images": 1, "seed": 11}

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: tenant.http.post("/v1/jobs", json=body, headers=key), range(8)))

    assert [a.status_code for a in answers] == [202] * 8, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    listed = tenant.http.get("/v1/jobs").json()["data"]
    assert [job["id"] for job in listed] == [answers[0].json()["id"]]


def test_an_idempotency_key_older_than_a_day_may_be_used_for_a_new_job(tenant_factory, endpoints, platform):
    tenant = tenant_factory(credits=0)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.http.post("/v1/jobs", json={"prompt": "a red bicycle", "seed": 1}, headers=key).json()["id"]
    with psycopg.connect(endpoints.database_url) as conn:
        conn.execute(f'UPDATE "{platform.schema("ingest")}".idempotency_keys SET created_at = now() - interval'
                     " '25 hours' WHERE tenant_id = %s", [tenant.id])

    second = tenant.http.post("/v1/jobs", json={"prompt": "a blue bicycle", "seed": 2}, headers=key)

    assert second.status_code == 202 and second.json()["id"] != first
    replay = tenant.http.post("/v1/jobs", json={"prompt": "a blue bicycle", "seed": 2}, headers=key)
    assert replay.json()["id"] == second.json()["id"]
