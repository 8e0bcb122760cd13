"""The console's receipt panel and usage page in a real headless browser: a final job's
receipt is verified in the page with WebCrypto (Ed25519, SHA-256 of its RFC 8785 canonical
JSON) against the published keys, and a receipt changed on its way is not; the usage page
charts images delivered and credits charged per day as the receipts sum them; the header
links to the documentation. Screenshots under artifacts/console/."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    JOB_TIMEOUT_MS,
    PHONE,
    assert_only_local_requests,
    browser,
    console,
    playwright_api,
    screenshot,
    text_of,
)


def settled_tenant(tenant_factory, jobs: list[dict]):
    """A tenant whose jobs (each submitted with `jobs[i]`) are final and settled; made on a
    thread of its own, beside Playwright's event loop."""
    def make():
        tenant = tenant_factory(1_000)
        ids = [tenant.submit(**body) for body in jobs]
        return tenant, ids, tenant.wait_settled(ids)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make).result()


def test_a_final_jobs_receipt_is_verified_in_the_browser_and_a_changed_one_is_not(console, tenant_factory):  # noqa: F811
    tenant, [job_id], jobs = settled_tenant(tenant_factory, [{"images": 2, "candidates": 3, "seed": 5}])
    receipt = tenant.http.get(f"/v1/jobs/{job_id}/receipt").json()
    page = console.page(tenant.api_key)
    page.goto(f"/console/jobs/{job_id}")

    verdict = page.get_by_test_id("receipt-verdict")
    verdict.wait_for(timeout=JOB_TIMEOUT_MS)
    assert verdict.get_attribute("data-verified") == "true", verdict.inner_text()
    assert receipt["signature"]["kid"] in verdict.inner_text()
    assert text_of(page, "receipt-sequence") == str(receipt["receipt"]["sequence"]) == "1"
    billing = jobs[job_id]["billing"]
    assert text_of(page, "receipt-credits").startswith(f"{billing['charged']} charged, {billing['released']} released")
    assert page.get_by_role("link", name="Download the receipt").count() == 1
    screenshot(page, "receipt-desktop")
    page.get_by_test_id("receipt").screenshot(path=str(ARTIFACTS / "receipt-panel.png"))

    changed = console.page(tenant.api_key)  # the same receipt, one number changed on its way to the page

    def tamper(route):
        document = route.fetch().json()
        document["receipt"]["credits"]["charged"] -= 1
        route.fulfill(status=200, content_type="application/json", body=json.dumps(document))

    changed.route("**/v1/jobs/*/receipt", tamper)
    changed.goto(f"/console/jobs/{job_id}")
    refused = changed.get_by_test_id("receipt-verdict")
    refused.wait_for(timeout=JOB_TIMEOUT_MS)
    assert refused.get_attribute("data-verified") == "false"
    assert "it was changed" in refused.inner_text()
    assert_only_local_requests(console)


def test_the_usage_page_charts_images_and_credits_per_day_as_the_receipts_sum_them(console, tenant_factory):  # noqa: F811
    tenant, ids, jobs = settled_tenant(tenant_factory, [{"images": 1, "candidates": 2, "seed": 1},
                                                        {"images": 2, "candidates": 3, "seed": 2}])
    images = sum(len(job["outputs"]) for job in jobs.values())
    credits = sum(job["billing"]["charged"] for job in jobs.values())
    today = datetime.now(UTC).date().isoformat()
    page = console.page(tenant.api_key)
    page.goto("/console/jobs")
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/console/usage")
    page.get_by_test_id("chart-images").wait_for()

    bars = page.locator("rect.bar.images")
    assert bars.count() == 30  # the last 30 days, today last
    today_bar = page.locator(f'rect.bar.images[data-date="{today}"]')
    assert today_bar.get_attribute("data-value") == str(images) and images >= 2
    assert page.locator(f'rect.bar.credits[data-date="{today}"]').get_attribute("data-value") == str(credits)
    assert float(today_bar.get_attribute("height")) > 0
    assert text_of(page, "usage-total-images") == str(images)
    assert text_of(page, "usage-total-credits") == str(credits)
    assert text_of(page, "usage-total-jobs") == str(len(ids))
    screenshot(page, "usage-desktop")

    page.get_by_role("link", name="7 days").click()
    page.wait_for_url("**/console/usage?days=7")
    # A locator assertion, not a predicate string: the console's Content-Security-Policy has
    # no 'unsafe-eval', and a predicate polled as a string is refused when the first look fails.
    playwright_api.expect(page.locator("rect.bar.images")).to_have_count(7)
    page.set_viewport_size(PHONE)
    screenshot(page, "usage-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.get_by_role("link", name="Docs").get_attribute("href") == "/docs/"
    assert_only_local_requests(console)
