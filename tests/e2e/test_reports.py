"""A delivered image reported as bad, through ingest: refunded as a grant or a retry token,
by the tenant's policy (set through the ledger's admin API); once per image; only for
images that were delivered."""

import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import LEDGER_ADMIN_TOKEN, Tenant
from tests.e2e.test_bad_input import assert_problem

UNIT_PRICE = 10  # generic, stable


def delivered_job(tenant: Tenant, images: int = 2) -> dict:
    job = next(iter(tenant.wait_settled([tenant.submit(images=images, seed=5)]).values()))
    assert job["state"] == "succeeded" and len(job["outputs"]) == images, job
    return job


def report(tenant: Tenant, job_id: str, n: int, reason: str = "the face is blurred") -> httpx.Response:
    return tenant.http.post(f"/v1/jobs/{job_id}/outputs/{n}/report", json={"reason": reason})


def wait_report_outcome(tenant: Tenant, job_id: str, n: int, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcomes = [r for r in tenant.job(job_id)["reports"] if r["n"] == n]
        if outcomes:
            return outcomes[0]
        time.sleep(0.2)
    raise AssertionError(f"no outcome for the report of image {n} of job {job_id} after {timeout_s}s")


def set_report_policy(platform, tenant: Tenant, policy: str) -> None:
    response = httpx.put(f"{platform.url('ledger')}/admin/v1/accounts/{tenant.id}/report-policy",
                         json={"report_policy": policy}, headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"})
    assert response.status_code == 200, response.text


def test_a_reported_image_is_refunded_as_a_grant_by_default(tenant_factory):
    tenant = tenant_factory(credits=1_000)
    job = delivered_job(tenant)
    before = tenant.balance()["available"]

    assert report(tenant, job["id"], 1).status_code == 202
    outcome = wait_report_outcome(tenant, job["id"], 1)

    assert (outcome["outcome"], outcome["credits"]) == ("refunded", UNIT_PRICE)
    assert tenant.balance()["available"] == before + UNIT_PRICE
    refunds = [g for g in tenant.http.get("/v1/account").json()["grants"] if g["source"] == "refund"]
    assert [g["amount"] for g in refunds] == [UNIT_PRICE]


def test_an_image_is_reported_once(tenant_factory):
    tenant = tenant_factory(credits=1_000)
    job = delivered_job(tenant)
    assert report(tenant, job["id"], 2).status_code == 202
    wait_report_outcome(tenant, job["id"], 2)
    after_refund = tenant.balance()["available"]

    again = report(tenant, job["id"], 2, "still blurred")

    assert assert_problem(again, 409)["type"] == "/problems/already-reported"
    assert [r["n"] for r in tenant.job(job["id"])["reports"]] == [2]
    # The other image can still be reported: the refusal was about image 2 only.
    assert report(tenant, job["id"], 1).status_code == 202
    wait_report_outcome(tenant, job["id"], 1)
    assert tenant.balance()["available"] == after_refund + UNIT_PRICE


def test_under_the_retry_token_policy_a_report_earns_a_free_image(platform, tenant_factory):
    tenant = tenant_factory(credits=1_000)
    set_report_policy(platform, tenant, "retry_token")
    job = delivered_job(tenant)
    before = tenant.balance()["available"]

    assert report(tenant, job["id"], 1).status_code == 202
    outcome = wait_report_outcome(tenant, job["id"], 1)

    assert (outcome["outcome"], outcome["credits"]) == ("retry_token", 0)
    account = tenant.http.get("/v1/account").json()
    assert (account["retry_tokens"], account["report_policy"], account["available"]) == (1, "retry_token", before)
    quote = tenant.http.post("/v1/quotes", json={"images": 1, "use_retry_tokens": True}).json()
    assert (quote["credits"], quote["retry_tokens_applied"]) == (0, 1)


@pytest.mark.parametrize("path, kind", [
    ("/outputs/3/report", "output-not-found"),
    ("/outputs/0/report", "output-not-found"),
])
def test_a_report_of_an_image_that_was_not_delivered_is_404(tenant_factory, path, kind):
    tenant = tenant_factory(credits=1_000)
    job = delivered_job(tenant)
    before = tenant.balance()["available"]

    response = tenant.http.post(f"/v1/jobs/{job['id']}{path}", json={"reason": "bad"})

    assert assert_problem(response, 404)["type"] == f"/problems/{kind}"
    assert tenant.job(job["id"])["reports"] == [] and tenant.balance()["available"] == before


def test_a_report_of_a_job_that_does_not_exist_or_is_someone_elses_is_404(tenant_factory):
    owner, other = tenant_factory(credits=1_000), tenant_factory(credits=0)
    job = delivered_job(owner, images=1)

    for tenant, job_id in [(owner, str(uuid.uuid4())), (owner, "not-a-job"), (other, job["id"])]:
        assert assert_problem(report(tenant, job_id, 1), 404)["type"] == "/problems/job-not-found"
    assert owner.job(job["id"])["reports"] == []


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x", "refund": True}])
def test_a_malformed_report_is_422(tenant_factory, body):
    tenant = tenant_factory(credits=0)
    response = tenant.http.post(f"/v1/jobs/{uuid.uuid4()}/outputs/1/report", json=body)
    assert_problem(response, 422)
