"""Money under control in the console, in a real headless browser: a key's spend cap set from
the account page (and refused past it), an alert shown there, and the usage page's spend by
end user equal to the API's; screenshots under artifacts/console/."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    PHONE,
    assert_only_local_requests,
    browser,
    console,
    screenshot,
    text_of,
)


def spend_tenant(tenant_factory):
    """A tenant with a low-balance threshold crossed and two end users' jobs ended, made on a
    thread beside Playwright's loop."""
    def make():
        tenant = tenant_factory(60)
        assert tenant.http.put("/v1/account/alerts/settings", json={"balance_low_below": 50}).status_code == 200
        jobs = [tenant.submit(images=1, candidates=1, end_user=user) for user in ("dana", "dana", "erik")]
        tenant.wait_settled(jobs)
        deadline = time.monotonic() + 60
        while not tenant.http.get("/v1/account/alerts").json()["alerts"]:
            assert time.monotonic() < deadline, "no balance alert after 60 s"
            time.sleep(0.3)
        return tenant

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make).result()


def test_a_cap_is_set_an_alert_seen_and_usage_shown_by_end_user(console, tenant_factory):  # noqa: F811
    tenant = spend_tenant(tenant_factory)
    page = console.page(tenant.api_key)
    page.goto("/console/account")
    form = page.locator("#cap-form")
    form.get_by_label("Credits per day (UTC)").fill("30")
    form.get_by_role("button", name="Save caps").click()
    page.get_by_test_id("key-spent-today").filter(has_text="of 30").wait_for()
    assert text_of(page, "key-spent-today") == "30 of 30"  # three 10-credit jobs today, through this key
    alert = page.get_by_test_id("alert-account.balance_low")
    alert.wait_for()
    # The alert names the balance it crossed the threshold at: 40 after the second job's hold,
    # or 30 where the ledger applied the last two holds together (a loaded run did the former).
    assert re.search(r"\b(40|30) credits available, below 50\b", alert.inner_text()), alert.inner_text()
    screenshot(page, "account-caps-alerts-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "account-caps-alerts-phone")
    keys = tenant.http.get("/v1/api-keys").json()["data"]
    assert [k["daily_cap_credits"] for k in keys] == [30]
    refused = tenant.http.post("/v1/jobs", json={"prompt": "one more", "images": 1})
    assert refused.status_code == 402 and refused.json()["type"] == "/problems/key-cap-reached"

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/console/usage?days=7")
    rows = page.get_by_test_id("attribution-row")
    rows.first.wait_for()
    shown = [row.inner_text().split("\t") for row in rows.all()]
    api = tenant.http.get("/v1/usage/attribution", params={"group_by": "end_user", "days": 7}).json()
    assert shown == [[g["value"], str(g["jobs"]), str(g["images"]), str(g["credits"])] for g in api["groups"]] + [
        ["Total", str(api["total"]["jobs"]), str(api["total"]["images"]), str(api["total"]["credits"])]]
    assert shown[0][0] == "dana" and shown[0][3] == "20"
    screenshot(page, "usage-by-end-user-desktop")
    assert_only_local_requests(console)
