"""A tenant in debt, on the five services as processes: credits bought through a checkout
(the Stripe simulator), some spent, then the payment disputed and the dispute lost, so the
account owes what was spent. A new job is refused at the door (402 `account-in-debt`, naming
the amount owed and how to settle it) and nothing is held; `GET /v1/account`, the Python
client, `genline account` and the console's billing page, in headless Chromium, show what is
owed (a screenshot under the test's folder)."""

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from genline_client import Genline
from tests.e2e.test_console import (  # noqa: F401  (fixtures)
    assert_only_local_requests,
    browser,
    console,
    text_of,
)
from tests.e2e.test_jobs_cli import genline

pytest.importorskip("playwright.sync_api")


def indebted(tenant_factory, platform, stripe) -> tuple[object, int]:
    """A tenant that bought 1,000 credits, spent some, and lost a dispute over the whole
    payment: it owes what it spent. Made on a thread beside Playwright's loop."""
    def make():
        tenant = tenant_factory(0)
        checkout = tenant.http.post("/v1/billing/checkout", json={"pack": "starter"}).json()
        paid = httpx.post(f"{stripe.base_url}/pay/{checkout['session_id']}")  # the hosted page's form
        assert paid.status_code == 303, paid.text
        wait_until(lambda: tenant.balance()["available"] == 1000)
        tenant.wait_settled([tenant.submit(images=1, candidates=1) for _ in range(3)])
        spent = 1000 - tenant.balance()["available"]
        assert spent > 0
        payment = stripe.sessions[checkout["session_id"]]["payment_intent"]
        dispute = asyncio.run(stripe.open_dispute(payment))
        asyncio.run(stripe.close_dispute(dispute["id"], "lost"))
        wait_until(lambda: tenant.http.get("/v1/account").json().get("owed") == spent)
        return tenant, spent

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make).result()


def wait_until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within 60 s"
        time.sleep(0.3)


def test_an_account_in_debt_is_refused_at_the_door_and_shown_what_it_owes(console, tenant_factory, platform,  # noqa: F811
                                                                         stripe, tmp_path):
    tenant, owed = indebted(tenant_factory, platform, stripe)

    refused = tenant.http.post("/v1/jobs", json={"prompt": "one more", "images": 1})
    assert refused.status_code == 402, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/account-in-debt" and problem["owed"] == owed
    assert f"owes {owed} credits" in problem["detail"] and "/v1/billing/checkout" in problem["detail"]
    assert problem["settle"] == "POST /v1/billing/checkout"
    assert len(tenant.http.get("/v1/jobs").json()["data"]) == 3  # the refused job was not recorded
    assert tenant.balance() == {"posted": 0, "pending": 0, "available": 0}  # nothing held
    evaluation = tenant.http.post("/v1/evaluations", json={"images": [{"url": "https://images.example.com/a.png"}]})
    assert evaluation.status_code == 402 and evaluation.json()["type"] == "/problems/account-in-debt", evaluation.text

    account = tenant.http.get("/v1/account").json()
    assert (account["owed"], account["available"]) == (owed, 0)
    with Genline(tenant.api_key, platform.ingest_url) as client:
        assert client.account().owed == owed
    shown = genline("account", api_url=platform.ingest_url, api_key=tenant.api_key)
    assert shown.returncode == 0 and f"owes {owed} credits" in shown.stdout, shown.stderr
    as_json = genline("account", "--json", api_url=platform.ingest_url, api_key=tenant.api_key)
    assert json.loads(as_json.stdout)["owed"] == owed

    page = console.page(tenant.api_key)
    page.goto("/console/account")
    page.get_by_role("heading", name="Billing").wait_for()
    debt = page.get_by_test_id("account-owed")
    debt.wait_for()
    assert text_of(page, "account-owed") == str(owed)
    assert f"owes {owed} credits" in page.get_by_test_id("debt-notice").inner_text()
    path = tmp_path / "billing-in-debt.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"console screenshot: {path}")
    assert path.stat().st_size > 0
    assert_only_local_requests(console)
