"""The operators' calibration report: delivered images, the ones customers reported bad,
and per profile and dimension how the thresholds fared, from ingest's admin API."""

import httpx

from tests.e2e.conftest import LEDGER_ADMIN_TOKEN
from tests.e2e.test_bad_input import assert_problem
from tests.e2e.test_reports import delivered_job, report, wait_report_outcome

ADMIN = {"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"}


def calibration(platform, headers=ADMIN, **params) -> httpx.Response:
    return httpx.get(f"{platform.ingest_url}/admin/v1/calibration", params=params, headers=headers, timeout=10)


def test_reported_images_count_as_bad_per_profile_and_dimension(platform, tenant_factory):
    tenant = tenant_factory(credits=1_000)
    first, second = delivered_job(tenant), delivered_job(tenant)
    assert report(tenant, first["id"], 1).status_code == 202
    assert wait_report_outcome(tenant, first["id"], 1)["outcome"] == "refunded"

    response = calibration(platform, tenant_id=tenant.id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant_id"] == tenant.id and body["images"] == 4 and body["reported_bad"] == 1
    rows = {(row["profile"], row["dimension"]): row for row in body["dimensions"]}
    sharpness = rows[("generic", "sharpness")]
    assert (sharpness["images"], sharpness["bad"], sharpness["bad_passed"]) == (4, 1, 1)
    assert sharpness["pass_rate"] == 1.0 and sharpness["threshold"] == 20 and sharpness["side"] == "min"
    assert {"nsfw", "banding", "blank"} <= {dimension for _, dimension in rows}
    assert second["id"] != first["id"]

    other = tenant_factory(credits=0)
    assert calibration(platform, tenant_id=other.id).json()["images"] == 0


def test_the_report_needs_the_admin_token_and_a_sane_range(platform):
    assert assert_problem(calibration(platform, headers={}, tenant_id="t-x"), 401)["type"].endswith("invalid-admin-token")
    backwards = calibration(platform, tenant_id="t-x", since="2026-02-01T00:00:00Z", until="2026-01-01T00:00:00Z")
    assert assert_problem(backwards, 422)["type"].endswith("invalid-range")
    assert_problem(calibration(platform), 422)  # no tenant named
    # a NUL would make PostgreSQL fail the query: refused as a validation error instead
    assert assert_problem(calibration(platform, tenant_id="t-\x00"), 422)["errors"][0]["code"] == "unstorable_text"
