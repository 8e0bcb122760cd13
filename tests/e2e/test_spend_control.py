"""Money under control on the running services: a key's spend cap set and shown through the
API, holding under 200 concurrent submissions (402 naming the cap, none over it), and spend
attributed to the tenant's end users and metadata, equal to the sum of the receipts."""

from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.e2e.test_api_keys import as_key, assert_problem, create_key


def key_spend(tenant, key_id: str) -> dict[str, int]:
    with psycopg.connect(tenant.endpoints.database_url) as conn:
        rows = conn.execute(f'SELECT period, spent FROM "{tenant.ledger_schema}".key_spend WHERE api_key_id = %s',
                            [key_id]).fetchall()
    return dict(rows)


def test_a_keys_caps_are_set_and_shown_through_the_api(tenant_factory):
    tenant = tenant_factory(credits=100)
    key = create_key(tenant, name="campaign", scopes=["jobs:write", "jobs:read"], daily_cap_credits=50)
    assert (key["daily_cap_credits"], key["monthly_cap_credits"], key["spent_today"]) == (50, None, 0)
    answer = tenant.http.put(f"/v1/api-keys/{key['id']}/caps", json={"daily_cap_credits": 20,
                                                                       "monthly_cap_credits": 300})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["daily_cap_credits"], answer.json()["monthly_cap_credits"]) == (20, 300)
    listed = {k["id"]: k for k in tenant.http.get("/v1/api-keys").json()["data"]}
    assert listed[key["id"]]["daily_cap_credits"] == 20 and listed[key["id"]]["spent_this_month"] == 0
    assert_problem(tenant.http.put(f"/v1/api-keys/{key['id']}/caps", json={"daily_cap_credits": -1}), 422,
                   "validation-error")
    assert_problem(tenant.http.put("/v1/api-keys/3d9c7a51-6f0e-4b8a-9c21-7e5d4f3a2b10/caps", json={}), 404,
                   "api-key-not-found")


def test_200_concurrent_submissions_on_a_key_capped_at_20_credits_spend_at_most_20(tenant_factory, platform):
    tenant = tenant_factory(credits=10_000)
    key = create_key(tenant, name="runaway script", scopes=["jobs:write", "jobs:read"])
    assert tenant.http.put(f"/v1/api-keys/{key['id']}/caps", json={"daily_cap_credits": 20}).status_code == 200
    with as_key(platform.ingest_url, key["secret"]) as client, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda n: client.post("/v1/jobs", json={"prompt": f"a red bicycle {n}", "images": 1,
                                                                          "candidates": 1}), range(200)))
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert len(accepted) + len(refused) == 200 and len(accepted) >= 2
    for answer in refused:
        problem = assert_problem(answer, 402, "key-cap-reached")
        assert problem["cap"] == "daily" and problem["cap_credits"] == 20 and "20 credits" in problem["detail"]
    jobs = tenant.wait_settled(accepted)
    admitted = [j for j in jobs.values() if j["billing"]["state"] != "rejected"]
    assert sum(j["billing"]["reserved"] for j in admitted) <= 20
    assert all(j["failure"]["code"] == "key_cap_reached" for j in jobs.values() if j["billing"]["state"] == "rejected")
    spent = key_spend(tenant, key["id"])
    assert spent["day"] <= 20 and spent["day"] == sum(j["billing"]["charged"] for j in admitted)
    listed = {k["id"]: k for k in tenant.http.get("/v1/api-keys").json()["data"]}
    assert listed[key["id"]]["spent_today"] == spent["day"]


def test_usage_by_end_user_and_by_metadata_key_equals_the_sum_of_the_receipts(tenant_factory):
    tenant = tenant_factory(credits=10_000)
    asked = [("alice", "spring", 1), ("alice", "autumn", 2), ("bob", "spring", 1), (None, None, 1)]
    job_ids = [tenant.submit(images=images, candidates=images, **({"end_user": user} if user else {}),
                             **({"metadata": {"campaign": campaign}} if campaign else {}))
               for user, campaign, images in asked]
    jobs = tenant.wait_settled(job_ids)
    assert jobs[job_ids[0]]["end_user"] == "alice" and jobs[job_ids[0]]["metadata"] == {"campaign": "spring"}
    receipts = {job_id: tenant.http.get(f"/v1/jobs/{job_id}/receipt").json()["receipt"] for job_id in job_ids}
    assert receipts[job_ids[1]]["end_user"] == "alice" and "end_user" not in receipts[job_ids[3]]

    def summed(label) -> dict:
        sums: dict = {}
        for receipt in receipts.values():
            group = sums.setdefault(label(receipt), {"jobs": 0, "images": 0, "credits": 0})
            group["jobs"] += 1
            group["images"] += receipt["images"]["delivered"]
            group["credits"] += receipt["credits"]["charged"]
        return sums

    def shown(group_by: str) -> dict:
        answer = tenant.http.get("/v1/usage/attribution", params={"group_by": group_by, "days": 2})
        assert answer.status_code == 200, answer.text
        return {g["value"]: {k: g[k] for k in ("jobs", "images", "credits")} for g in answer.json()["groups"]}

    assert shown("end_user") == summed(lambda r: r.get("end_user"))
    assert shown("metadata.campaign") == summed(lambda r: (r.get("metadata") or {}).get("campaign"))
    export = tenant.http.get("/v1/usage/attribution", params={"group_by": "end_user", "format": "csv"})
    assert export.headers["content-type"].startswith("text/csv")
    lines = export.text.splitlines()
    assert lines[0] == "end_user,jobs,images,credits" and len(lines) == 1 + len(shown("end_user"))
    assert_problem(tenant.http.get("/v1/usage/attribution", params={"group_by": "prompt"}), 422, "validation-error")
    too_many = {f"k{n}": "v" for n in range(17)}
    assert_problem(tenant.http.post("/v1/jobs", json={"prompt": "p", "metadata": too_many}), 422, "validation-error")
