"""Candidates through the public API (`GET /v1/jobs/{id}/candidates/{index}/image`): the
owner gets every candidate, rejected ones too, byte for byte as scored; anyone else gets
404. And the operator's JSON behind the console's operator view (`/admin/v1/providers`,
`/admin/v1/dead-letters`): the router's providers and the dead-letter topics, for operator
tokens only."""

import hashlib

import httpx

from tests.e2e.conftest import LEDGER_ADMIN_TOKEN


def test_the_owner_gets_every_candidate_and_nobody_else_does(tenant_factory):
    owner, stranger = tenant_factory(credits=1_000), tenant_factory(credits=0)
    job_id = owner.submit(images=1, candidates=4, seed=21)
    job = owner.wait_settled([job_id])[job_id]
    assert len(job["scores"]) == 4

    for score in job["scores"]:
        response = owner.http.get(f"/v1/jobs/{job_id}/candidates/{score['index']}/image")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == score["media_type"]
        assert hashlib.sha256(response.content).hexdigest() == score["sha256"]

    index = job["scores"][0]["index"]
    for answer in (stranger.http.get(f"/v1/jobs/{job_id}/candidates/{index}/image"),
                   owner.http.get(f"/v1/jobs/{job_id}/candidates/999/image")):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
    assert owner.http.get(f"/v1/jobs/{job_id}/candidates/999/image").json()["type"] == "/problems/candidate-not-found"
    assert stranger.http.get(f"/v1/jobs/{job_id}/candidates/{index}/image").json()["type"] == "/problems/job-not-found"


def test_operators_read_providers_and_dead_letters_and_tenants_do_not(platform, tenant_factory):
    operator = {"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}
    providers = httpx.get(f"{platform.ingest_url}/admin/v1/providers", headers=operator, timeout=10)
    assert providers.status_code == 200, providers.text
    by_name = {p["name"]: p for p in providers.json()["providers"]}
    assert {"local-standard", "local-budget", "local-premium"} <= by_name.keys()
    standard = by_name["local-standard"]
    assert standard["state"] in ("closed", "open", "half_open") and standard["price_micro_usd"] == 4000
    assert {"generic", "headshot", "product"} <= standard["pass_rates"].keys()
    assert standard["max_concurrency"] == 16 and 0 <= standard["in_flight"] <= 16

    dead = httpx.get(f"{platform.ingest_url}/admin/v1/dead-letters", headers=operator, timeout=30)
    assert dead.status_code == 200, dead.text
    assert set(dead.json()["topics"]) == {f"genline.{s}.v1.dlq" for s in ("ingest", "ledger", "router", "scorer",
                                                                          "delivery")}
    assert dead.json()["total"] == sum(dead.json()["topics"].values())

    tenant = tenant_factory(credits=0)
    for path in ("/admin/v1/providers", "/admin/v1/dead-letters"):
        refused = httpx.get(f"{platform.ingest_url}{path}", headers={"Authorization": f"Bearer {tenant.api_key}"},
                            timeout=10)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"


def test_every_console_path_is_the_page_and_an_unknown_asset_is_a_problem(platform):
    page = httpx.get(f"{platform.ingest_url}/console/jobs/0f6c2d4e-9b1a-4c3e-8f7d-2a5b6c7d8e9f", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/console/assets/console.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    script = httpx.get(f"{platform.ingest_url}/console/assets/console.js", timeout=10)
    assert script.status_code == 200 and "sessionStorage" in script.text
    missing = httpx.get(f"{platform.ingest_url}/console/assets/nothing.js", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{platform.ingest_url}/console", timeout=10).headers["location"] == "/console/jobs"
