"""Money in through Stripe, against a stateful simulator of Stripe's API on loopback
(tests/payments/stripe_simulator.py) that the official library talks to and that posts its
events signed as Stripe signs them: checkouts grant once whatever the deliveries, auto
top-up charges once when many jobs cross its threshold, refunds and disputes take credits
back, and a replay of the journal agrees (failed charges and their retries:
test_auto_top_up_retries.py)."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from genline_stack.ports import free_port
from services.common.bus.envelope import envelop
from services.common.runtime import listen
from services.ledger.app import LedgerApp, http_app
from services.ledger.replay import LedgerReplay, replay_ledger
from tests.identity import headers_as
from tests.ledger.test_reservations import delivered, open_scratch, published, scratch_ledger, submitted
from tests.payments.stripe_simulator import StripeSimulator

pytestmark = pytest.mark.processes  # serves the ledger's HTTP API and the simulator

SECRET = "whsec_simulated_4f1c9a"


@dataclass
class Billing:
    ledger: LedgerApp
    stripe: StripeSimulator
    http: httpx.AsyncClient  # the ledger's HTTP API
    internal: dict  # headers that prove ingest to the ledger

    async def checkout(self, tenant: str, pack: str = "starter", save_card: bool = False) -> dict:
        response = await self.http.post(f"/internal/v1/tenants/{tenant}/checkout", headers=self.internal, json={
            "pack": pack, "save_card": save_card, "success_url": "https://app.example/paid?s={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/account"})
        assert response.status_code == 201, response.text
        return response.json()

    async def auto_topup(self, tenant: str, below: int, pack: str = "starter", max_per_month: int = 5) -> dict:
        response = await self.http.put(f"/internal/v1/tenants/{tenant}/auto-topup", headers=self.internal,
                                       json={"below": below, "pack": pack, "max_per_month": max_per_month})
        assert response.status_code == 200, response.text
        return response.json()

    async def billing(self, tenant: str) -> dict:
        response = await self.http.get(f"/internal/v1/tenants/{tenant}/billing", headers=self.internal)
        assert response.status_code == 200, response.text
        return response.json()

    async def account(self, tenant: str) -> dict:
        async with self.ledger.runtime.pool.connection() as conn:
            return await (await conn.execute(
                "SELECT posted, pending, posted - pending AS available, owed FROM accounts WHERE tenant_id = %s",
                [tenant])).fetchone() or {"posted": 0, "pending": 0, "available": 0, "owed": 0}


async def serve(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    asyncio.create_task(server.serve(sockets=listen("127.0.0.1", [port])))
    while not server.started:
        await asyncio.sleep(0.02)
    return server


@pytest.fixture
async def billing(endpoints) -> AsyncIterator[Billing]:
    """A ledger (its HTTP API served, its consumer fed directly) and the simulator, each on a
    loopback port, the ledger's Stripe calls sent to the simulator and the simulator's events
    to the ledger's webhook."""
    stripe_port, ledger_port = free_port(), free_port()
    stripe = StripeSimulator(SECRET, f"http://127.0.0.1:{ledger_port}/v1/webhooks/payments",
                             base_url=f"http://127.0.0.1:{stripe_port}")
    ledger = await open_scratch(scratch_ledger(endpoints, payment_webhook_secret=SECRET, stripe_api_key="sk_test_sim",
                                               stripe_api_base=stripe.base_url))
    servers = [await serve(stripe.app(), stripe_port), await serve(http_app(ledger), ledger_port)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ledger_port}", timeout=30) as http:
        yield Billing(ledger, stripe, http, headers_as(endpoints, "ingest", "ledger"))
    for server in servers:
        server.should_exit = True
    await asyncio.sleep(0.2)
    await ledger.runtime.pool.close()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def grants_of(billing: Billing, tenant_id: str) -> list[dict]:
    return [g for g in await published(billing.ledger, "genline.credits.granted.v1") if g["tenant_id"] == tenant_id]


def no_differences(billing: Billing) -> list[str]:
    lines: list[str] = []
    code = replay_ledger(billing.ledger.settings, LedgerReplay(billing.ledger.runtime.name), out=lines.append)
    assert code == 0, lines
    return lines


async def test_a_completed_checkout_grants_once_though_its_events_come_three_times_and_out_of_order(billing):
    buyer = tenant()
    billing.stripe.auto_deliver = False
    opened = await billing.checkout(buyer, "standard")
    assert opened["url"].startswith(billing.stripe.base_url) and opened["credits"] == 5000
    session = billing.stripe.sessions[opened["session_id"]]
    assert (session["mode"], session["customer"] is not None, session["metadata"]["genline_credits"]) == (
        "payment", True, "5000")

    await billing.stripe.pay_session(opened["session_id"])
    [completed] = billing.stripe.events_of("checkout.session.completed")
    others = [e for e in billing.stripe.events if e is not completed]
    # The completion first and then twice at once, the payment's other events between.
    statuses = [await billing.stripe.deliver(completed), *[await billing.stripe.deliver(e) for e in reversed(others)]]
    statuses += await asyncio.gather(billing.stripe.deliver(completed), billing.stripe.deliver(completed))

    assert statuses == [200] * len(statuses)  # a duplicate is acknowledged, never retried for days
    assert (await billing.account(buyer))["available"] == 5000
    [granted] = await grants_of(billing, buyer)
    assert (granted["amount"], granted["source"]) == (5000, "payment")
    assert [c["state"] for c in (await billing.billing(buyer))["checkouts"]] == ["paid"]
    no_differences(billing)


async def test_a_payment_that_settles_later_grants_only_when_it_succeeds(billing):
    buyer, unlucky = tenant(), tenant()
    later, failing = await billing.checkout(buyer), await billing.checkout(unlucky)

    await billing.stripe.pay_session(later["session_id"], settles_later=True)
    await billing.stripe.pay_session(failing["session_id"], settles_later=True)
    assert (await billing.account(buyer))["available"] == 0
    assert [c["state"] for c in (await billing.billing(buyer))["checkouts"]] == ["awaiting_payment"]

    await billing.stripe.settle_session(later["session_id"], succeeded=True)
    await billing.stripe.settle_session(failing["session_id"], succeeded=False)

    assert (await billing.account(buyer))["available"] == 1000
    assert (await billing.account(unlucky))["available"] == 0
    assert [c["state"] for c in (await billing.billing(unlucky))["checkouts"]] == ["failed"]


async def test_an_expired_checkout_is_recorded_and_grants_nothing(billing):
    buyer = tenant()
    opened = await billing.checkout(buyer)
    await billing.stripe.expire_session(opened["session_id"])
    assert [c["state"] for c in (await billing.billing(buyer))["checkouts"]] == ["expired"]
    assert (await billing.account(buyer))["available"] == 0


async def buy_with_saved_card(billing: Billing, buyer: str, pack: str = "starter") -> dict:
    opened = await billing.checkout(buyer, pack, save_card=True)
    return await billing.stripe.pay_session(opened["session_id"])


async def test_an_auto_top_up_fires_once_when_20_jobs_cross_the_threshold_at_once(billing):
    buyer = tenant()
    await buy_with_saved_card(billing, buyer)  # 1,000 credits, and the card saved
    await billing.auto_topup(buyer, below=500)
    jobs = [submitted(buyer, images=3) for _ in range(20)]  # 30 credits each

    # 20 jobs held and delivered at once: 600 charged, the balance falls from 1,000 to 400.
    await asyncio.gather(*(billing.ledger.runtime.consumer.apply(envelop(job, "/test")) for job in jobs))
    await asyncio.gather(*(billing.ledger.runtime.consumer.apply(envelop(delivered(job, 3), "/test"))
                           for job in jobs))
    charged = await asyncio.gather(*(billing.ledger.payments.charge_due() for _ in range(4)))

    assert sum(charged) == 1
    assert len(billing.stripe.intent_creations) == 1
    assert billing.stripe.intent_creations[0].startswith("genline-auto-topup-")
    assert (await billing.account(buyer))["available"] == 400 + 1000
    [attempt] = (await billing.billing(buyer))["auto_topups"]
    assert (attempt["state"], attempt["credits"]) == ("succeeded", 1000)
    assert [g["source"] for g in await grants_of(billing, buyer)] == ["payment", "payment"]
    no_differences(billing)


async def test_a_refund_and_a_lost_dispute_take_credits_back_and_replay_agrees(billing):
    refunded, disputed = tenant(), tenant()
    paid = await buy_with_saved_card(billing, refunded, "standard")  # 5,000 credits for 45.00
    await billing.stripe.refund(paid["payment_intent"], 900)  # a fifth
    assert (await billing.account(refunded))["available"] == 4000
    await billing.stripe.refund(paid["payment_intent"], 900)  # charge.refunded says 1,800 in all
    assert (await billing.account(refunded))["available"] == 3000

    bought = await buy_with_saved_card(billing, disputed, "starter")
    await billing.auto_topup(disputed, below=10)
    dispute = await billing.stripe.open_dispute(bought["payment_intent"])
    assert (await billing.account(disputed))["available"] == 0  # held while the dispute is open
    rule = (await billing.billing(disputed))["auto_topup"]
    assert not rule["enabled"] and "dispute" in rule["paused_reason"]
    await billing.stripe.close_dispute(dispute["id"], "lost")
    assert await billing.account(disputed) == {"posted": 0, "pending": 0, "available": 0, "owed": 0}

    reclaimed = await published(billing.ledger, "genline.credits.reclaimed.v1")
    assert sorted((r["tenant_id"] == refunded, r["cause"], r["amount"]) for r in reclaimed) == [
        (False, "dispute_held", 1000), (False, "dispute_lost", 0), (True, "refund", 1000), (True, "refund", 1000)]
    report = (await billing.http.get("/admin/v1/reconciliation")).status_code  # off without an admin token
    assert report == 404
    no_differences(billing)


async def test_a_refund_and_a_dispute_that_arrive_before_their_payment_apply_when_it_does(billing):
    buyer = tenant()
    billing.stripe.auto_deliver = False
    opened = await billing.checkout(buyer, "standard")
    session = await billing.stripe.pay_session(opened["session_id"])
    await billing.stripe.refund(session["payment_intent"], 900)  # a fifth of 45.00
    await billing.stripe.open_dispute(session["payment_intent"], amount=1800)  # two fifths
    [completed] = billing.stripe.events_of("checkout.session.completed")

    for event in reversed(billing.stripe.events):  # the dispute first, the completion last
        assert await billing.stripe.deliver(event) == 200
    assert (await billing.account(buyer))["available"] == 5000 - 1000 - 2000

    assert await billing.stripe.deliver(completed) == 200  # Stripe sends it again: nothing more
    assert (await billing.account(buyer))["available"] == 2000
    no_differences(billing)


async def test_a_won_dispute_gives_the_credits_back(billing):
    buyer = tenant()
    bought = await buy_with_saved_card(billing, buyer)
    dispute = await billing.stripe.open_dispute(bought["payment_intent"], amount=500)
    assert (await billing.account(buyer))["available"] == 500
    await billing.stripe.close_dispute(dispute["id"], "won")
    assert (await billing.account(buyer))["available"] == 1000
    no_differences(billing)


async def test_a_refund_of_spent_credits_leaves_a_debt_that_refuses_new_jobs_and_spares_running_ones(billing):
    buyer = tenant()
    bought = await buy_with_saved_card(billing, buyer)
    running = submitted(buyer, images=40)  # 400 held
    spent = submitted(buyer, images=50)
    for job in (running, spent):
        await billing.ledger.runtime.consumer.apply(envelop(job, "/test"))
    await billing.ledger.runtime.consumer.apply(envelop(delivered(spent, 50), "/test"))  # 500 charged

    await billing.stripe.refund(bought["payment_intent"], 1000)  # all of it, with 100 left unheld

    assert await billing.account(buyer) == {"posted": 400, "pending": 400, "available": 0, "owed": 900}
    refused = submitted(buyer)
    await billing.ledger.runtime.consumer.apply(envelop(refused, "/test"))
    [rejected] = [r for r in await published(billing.ledger, "genline.credits.reservation_rejected.v1")
                  if r["job_id"] == str(refused.job_id)]
    assert rejected["reason_code"] == "account_in_debt" and "owes 900 credits" in rejected["reason"]
    await billing.ledger.runtime.consumer.apply(envelop(delivered(running, 40), "/test"))  # still charged
    assert await billing.account(buyer) == {"posted": 0, "pending": 0, "available": 0, "owed": 900}

    await buy_with_saved_card(billing, buyer)  # the next 1,000 pay the debt first
    assert await billing.account(buyer) == {"posted": 100, "pending": 0, "available": 100, "owed": 0}
    no_differences(billing)


async def request_again(billing: Billing, buyer: str) -> None:
    """A job charged while the balance is below the rule asks for the next top-up."""
    job = submitted(buyer)
    await billing.ledger.runtime.consumer.apply(envelop(job, "/test"))
    await billing.ledger.runtime.consumer.apply(envelop(delivered(job, 1), "/test"))


async def test_a_forged_or_stale_event_is_refused_and_grants_nothing(billing):
    buyer = tenant()
    opened = await billing.checkout(buyer)
    billing.stripe.auto_deliver = False
    await billing.stripe.pay_session(opened["session_id"])
    [completed] = billing.stripe.events_of("checkout.session.completed")
    payload = json.dumps(completed).encode()

    forged = StripeSimulator("whsec_someone_else", billing.stripe.webhook_url)
    assert await forged.deliver(completed, attempts=1) == 400
    stale = await billing.http.post("/v1/webhooks/payments", content=payload, headers={
        "Stripe-Signature": f"t=1700000000,v1={'0' * 64}"})
    unsigned = await billing.http.post("/v1/webhooks/payments", content=payload)

    assert stale.status_code == 400 and stale.json()["type"].endswith("invalid-signature")
    assert unsigned.status_code == 400
    assert (await billing.account(buyer))["available"] == 0
    assert await billing.stripe.deliver(completed) == 200  # the real one still counts
    assert (await billing.account(buyer))["available"] == 1000


async def test_an_unknown_pack_is_a_problem_and_opens_nothing(billing):
    response = await billing.http.post(f"/internal/v1/tenants/{tenant()}/checkout", headers=billing.internal, json={
        "pack": "galactic", "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"})
    assert response.status_code == 422 and response.json()["type"].endswith("unknown-credit-pack")
    assert billing.stripe.sessions == {}


async def test_the_billing_api_answers_ingest_only(billing, endpoints):
    path = f"/internal/v1/tenants/{tenant()}/billing"
    assert (await billing.http.get(path)).status_code == 401
    assert (await billing.http.get(path, headers=headers_as(endpoints, "router", "ledger"))).status_code == 403
