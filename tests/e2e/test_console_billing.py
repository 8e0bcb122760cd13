"""Buying credits from the console in a real headless browser: the account page opens a
checkout, the browser follows the redirect to the payment processor's hosted page (the
Stripe simulator on loopback), pays there, comes back, and sees the credits arrive once the
processor's signed event has granted them; then it sets an auto top-up rule. Screenshots of
the checkout page and of the account page after the payment are saved under
artifacts/console/."""

import pytest

from genline_client import Genline
from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    assert_only_local_requests,
    browser,
    console,
    screenshot,
    tenants,
    text_of,
)

pytest.importorskip("playwright.sync_api")


def test_a_top_up_from_the_console_follows_the_checkout_and_back_and_the_credits_arrive(console, tenants, stripe,  # noqa: F811
                                                                                        platform):
    tenant = tenants(0)
    page = console.page(tenant.api_key)
    page.goto("/console/account")
    page.get_by_role("heading", name="Billing").wait_for()
    assert text_of(page, "account-available") == "0"

    page.get_by_label("Save the card for auto top-up").check()
    page.get_by_test_id("buy-standard").click()
    page.wait_for_url(f"{stripe.base_url}/pay/*")  # the processor's page, not ours
    assert page.locator("#amount").inner_text() == "45.00 USD"
    screenshot(page, "billing-checkout")
    page.get_by_role("button", name="Pay 45.00 USD").click()

    page.wait_for_url("**/console/account?checkout=*")
    page.get_by_text("Payment confirmed: 5000 credits have arrived.").wait_for()
    assert text_of(page, "account-available") == "5000"
    assert page.get_by_test_id("checkout-row").first.inner_text().endswith("paid")
    screenshot(page, "billing-paid")

    page.get_by_label("When the balance falls below").fill("1000")
    page.get_by_role("button", name="Save auto top-up").click()
    page.get_by_text("Auto top-up is on.").wait_for()
    [session] = [s for s in stripe.sessions.values() if s["metadata"].get("genline_tenant") == tenant.id]
    assert stripe.cards[session["customer"]], "the card was saved for auto top-up"
    assert tenant.balance()["available"] == 5000
    assert_only_local_requests(console)

    # The Python client sees the same rule and opens a checkout on the processor's page.
    with Genline(tenant.api_key, platform.ingest_url) as client:
        assert client.billing()["auto_topup"]["below"] == 1000
        assert client.checkout("starter").url.startswith(f"{stripe.base_url}/pay/")
