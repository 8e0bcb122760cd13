"""Money under control on the running services: a key's spend cap set and shown through the
API, holding under 200 concurrent submissions (402 naming the cap, none over it), alerts sent
once per crossing to the tenant's endpoint, signed, and spend attributed to the tenant's end
users and metadata, equal to the sum of the receipts."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.e2e.test_api_keys import as_key, assert_problem, create_key
from tests.e2e.test_webhooks import Receiver, create_endpoint, verifies


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
    first_entry = tenant.http.get(f"/v1/jobs/{job_ids[0]}/events").json()["data"][0]
    assert first_entry["payload"]["end_user"] == "alice" and first_entry["payload"]["metadata"] == {"campaign": "spring"}

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


@pytest.fixture
def alert_receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def alerts_listed(tenant, count: int, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = tenant.http.get("/v1/account/alerts")
        assert answer.status_code == 200, answer.text
        if len(answer.json()["alerts"]) >= count or time.monotonic() > deadline:
            return answer.json()["alerts"]
        time.sleep(0.3)


def test_alerts_reach_the_tenants_endpoint_signed_once_per_crossing(tenant_factory, platform, alert_receiver):
    receiver = alert_receiver
    tenant = tenant_factory(credits=40)
    endpoint = create_endpoint(tenant, receiver.url("/alerts"),
                               event_types=["account.balance_low", "account.key_cap_reached"])
    answer = tenant.http.put("/v1/account/alerts/settings", json={"balance_low_below": 25})
    assert answer.status_code == 200 and answer.json() == {"balance_low_below": 25, "grant_expiring_days": 7}
    key = create_key(tenant, name="capped", scopes=["jobs:write", "jobs:read"], daily_cap_credits=10)
    with as_key(platform.ingest_url, key["secret"]) as client:
        first = client.post("/v1/jobs", json={"prompt": "a red bicycle", "images": 1, "candidates": 1})
        assert first.status_code == 202, first.text
        tenant.wait_settled([first.json()["id"]])  # 30 left, the key's 10 spent: its cap reached
        problem = assert_problem(client.post("/v1/jobs", json={"prompt": "again", "images": 1}), 402,
                                 "key-cap-reached")
        assert problem["cap_credits"] == 10
    requests = receiver.wait("/alerts", 1)
    second = tenant.submit(images=1, candidates=1)
    tenant.wait_settled([second])  # 20 left: below 25, a crossing
    requests = receiver.wait("/alerts", 2)
    third = tenant.submit(images=1, candidates=1)
    tenant.wait_settled([third])  # 10 left: the same crossing, not told again
    listed = alerts_listed(tenant, 2)
    time.sleep(3)  # three of the ledger's looks (GENLINE_ALERT_INTERVAL_S=1)
    assert len(receiver.requests["/alerts"]) == 2 and len(alerts_listed(tenant, 2)) == 2
    assert all(verifies(endpoint["secret"], r) for r in requests)
    sent = {json.loads(body)["type"]: json.loads(body)["data"] for _, body in requests}
    assert sent["account.balance_low"]["available"] == 20 and sent["account.balance_low"]["threshold"] == 25
    assert sent["account.key_cap_reached"]["api_key_id"] == key["id"] and sent["account.key_cap_reached"]["cap"] == 10
    assert {a["alert"] for a in listed} == {"account.balance_low", "account.key_cap_reached"}
    assert {a["id"] for a in listed} == {data["id"] for data in sent.values()}


def test_the_client_and_the_cli_set_and_show_a_keys_caps_and_usage_by_end_user(tenant_factory, platform):
    from genline_client import Genline, PaymentRequired
    from tests.e2e.test_jobs_cli import genline

    tenant = tenant_factory(credits=1_000)
    as_tenant = {"api_url": platform.ingest_url, "api_key": tenant.api_key}
    with Genline(tenant.api_key, platform.ingest_url) as client:
        key = next(k for k in client.api_keys() if k["name"] == "operator")
        capped = client.set_key_caps(key["id"], daily_cap_credits=10)
        assert capped["daily_cap_credits"] == 10 and capped["monthly_cap_credits"] is None
        job = client.jobs.create("a red bicycle", images=1, candidates=1, end_user="carol", metadata={"team": "ads"})
        tenant.wait_settled([str(job.id)])
        try:
            client.jobs.create("a blue bicycle", images=1, candidates=1)
            raise AssertionError("a job past the key's cap was accepted")
        except PaymentRequired as refused:
            assert refused.problem["cap"] == "daily" and refused.problem["cap_credits"] == 10
        by_user = client.usage_attribution("end_user", days=1)
        assert [(g["value"], g["credits"]) for g in by_user["groups"]] == [("carol", 10)]
    listed = genline("keys", "list", "--json", **as_tenant)
    assert listed.returncode == 0, listed.stderr
    assert [(k["daily_cap_credits"], k["spent_today"]) for k in json.loads(listed.stdout)] == [(10, 10)]
    raised = genline("keys", "caps", key["id"], "--daily", "30", "--json", **as_tenant)
    assert raised.returncode == 0 and json.loads(raised.stdout)["daily_cap_credits"] == 30
    by_team = genline("usage", "--by", "metadata.team", "--days", "1", **as_tenant)
    assert by_team.returncode == 0 and "ads" in by_team.stdout and "total" in by_team.stdout
    alerts = genline("alerts", "--balance-low-below", "5000", "--json", **as_tenant)
    assert alerts.returncode == 0 and json.loads(alerts.stdout)["settings"]["balance_low_below"] == 5000


def test_a_refused_prompt_is_a_422_naming_its_category_and_costs_nothing(tenant_factory, platform):
    tenant = tenant_factory(credits=100)
    rules = {"rules": [{"category": "competitors", "terms": ["acme corp"], "patterns": ["globex*"]}],
             "policy": "fail_closed"}
    answer = tenant.http.put("/v1/account/prompt-screening", json=rules)
    assert answer.status_code == 200, answer.text
    assert tenant.http.get("/v1/account/prompt-screening").json() == rules
    for prompt in ("a billboard for ACME Corp", "the Globex tower at night"):
        problem = assert_problem(tenant.http.post("/v1/jobs", json={"prompt": prompt, "images": 4}), 422,
                                 "prompt-refused")
        assert problem["category"] == "competitors" and problem["screened_by"] == "tenant"
    assert_problem(tenant.http.put("/v1/account/prompt-screening", json={"rules": [{"category": "x",
                                                                                    "patterns": ["[a-z]+"]}]}),
                   422, "validation-error")
    assert tenant.http.get("/v1/jobs").json()["data"] == []
    with psycopg.connect(tenant.endpoints.database_url) as conn:
        held = conn.execute(f'SELECT count(*) FROM "{tenant.ledger_schema}".transfers WHERE tenant_id = %s',
                            [tenant.id]).fetchone()[0]
        generated = conn.execute(f'SELECT count(*) FROM "{platform.schema("router")}".jobs WHERE tenant_id = %s',
                                 [tenant.id]).fetchone()[0]
    assert (held, generated) == (0, 0)
    assert tenant.balance() == {"posted": 100, "pending": 0, "available": 100}
    accepted = tenant.submit(prompt="a red bicycle against a brick wall", images=1, candidates=1)
    assert tenant.wait_settled([accepted])[accepted]["state"] == "succeeded"
