"""Auto top-up retries as the card networks allow them, against the Stripe simulator: a
decline that may be retried is tried again hours, then days later, never sooner however
many jobs cross the threshold meanwhile, and never more often than the networks allow in 30
days; a decline they forbid retrying (a lost card, Stripe's `do_not_try_again`) or one that
needs the cardholder (`authentication_required`) is never charged again off-session. Every
alert says when the next try is, or that there is none."""

from datetime import datetime, timedelta

import pytest

from services.ledger.payments import retries
from tests.ledger.test_reservations import published
from tests.ledger.test_stripe_payments import (  # noqa: F401  (the fixture)
    billing,
    buy_with_saved_card,
    request_again,
    tenant,
)
from tests.payments.stripe_simulator import AUTHENTICATION_REQUIRED, INSUFFICIENT_FUNDS, LOST_CARD, SUCCEEDS

pytestmark = pytest.mark.processes  # serves the ledger's HTTP API and the simulator


async def told(billing, buyer: str) -> list[dict]:  # noqa: F811
    """The tenant's billing.topup_failed alerts, in the order raised."""
    return sorted((a for a in await published(billing.ledger, "genline.account.alerted.v1")
                   if a["tenant_id"] == buyer and a["alert"] == "billing.topup_failed"), key=lambda a: a["raised_at"])


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def test_a_decline_is_tried_again_hours_then_days_later_and_never_sooner(billing):  # noqa: F811
    """The issue's run: a decline, then jobs crossing the threshold at once; no second charge
    follows within seconds, the next one waits for its time, and the gaps grow to days."""
    buyer = tenant()
    bought = await buy_with_saved_card(billing, buyer)
    billing.stripe.save_card(bought["customer"], INSUFFICIENT_FUNDS)
    billing.stripe.auto_deliver = False  # the declines told by the charges' answers, at the times this test sets
    await billing.auto_topup(buyer, below=2000)

    assert await billing.ledger.payments.charge_due() == 1
    for _ in range(3):
        await request_again(billing, buyer)
        assert await billing.ledger.payments.charge_due() == 0
    assert len(billing.stripe.intent_creations) == 1

    [first] = await told(billing, buyer)
    rule = (await billing.billing(buyer))["auto_topup"]
    next_try = at(first["details"]["next_try_at"])
    assert rule["enabled"] and at(rule["next_try_at"]) == next_try
    assert first["details"]["failure_code"] == "insufficient_funds" and first["details"]["retried"]
    assert next_try - at(first["raised_at"]) >= timedelta(hours=1)

    tries = [at(first["raised_at"])]
    while next_try is not None:
        assert await billing.ledger.payments.charge_due(now=next_try - timedelta(seconds=1)) == 0
        assert await billing.ledger.payments.charge_due(now=next_try + timedelta(seconds=1)) == 1
        tries.append(next_try)
        next_try = at((await told(billing, buyer))[-1]["details"]["next_try_at"])

    gaps = [later - earlier for earlier, later in zip(tries, tries[1:])]
    assert gaps == sorted(gaps) and gaps[0] < timedelta(days=1) <= gaps[-1]
    assert len(tries) == len(billing.stripe.intent_creations) <= retries.NETWORK_TRIES_IN_30_DAYS
    assert tries[-1] - tries[0] <= timedelta(days=30)
    rule = (await billing.billing(buyer))["auto_topup"]
    assert not rule["enabled"] and "insufficient_funds" in rule["paused_reason"]
    assert await billing.ledger.payments.charge_due(now=tries[-1] + timedelta(days=40)) == 0


@pytest.mark.parametrize("card, code", [(LOST_CARD, "lost_card"),
                                        (AUTHENTICATION_REQUIRED, "authentication_required")])
async def test_a_decline_that_may_not_be_retried_is_never_charged_again(billing, card, code):  # noqa: F811
    buyer = tenant()
    bought = await buy_with_saved_card(billing, buyer)
    billing.stripe.save_card(bought["customer"], card)
    await billing.auto_topup(buyer, below=2000)

    assert await billing.ledger.payments.charge_due() == 1
    [alert] = await told(billing, buyer)
    assert alert["details"]["failure_code"] == code
    assert alert["details"]["next_try_at"] is None and not alert["details"]["retried"]
    rule = (await billing.billing(buyer))["auto_topup"]
    assert not rule["enabled"] and code in rule["paused_reason"] and rule["next_try_at"] is None

    # Set again with the same card, the card is still not charged; another card is.
    await billing.auto_topup(buyer, below=2000)
    await billing.ledger.payments.charge_due(now=datetime.fromisoformat(alert["raised_at"]) + timedelta(days=40))
    assert len(billing.stripe.intent_creations) == 1
    billing.stripe.save_card(bought["customer"], SUCCEEDS)
    await billing.auto_topup(buyer, below=2000)
    assert await billing.ledger.payments.charge_due() == 1
    assert len(billing.stripe.intent_creations) == 2
    assert (await billing.account(buyer))["available"] == 2000


def test_the_schedule_stays_within_the_networks_count_in_any_30_days():
    failed_at = datetime(2026, 1, 1)
    tries, declined = [failed_at], 1
    while (later := retries.next_try(declined, declined, failed_at=tries[-1])) is not None:
        tries.append(later)
        declined += 1
    for start in tries:
        assert sum(start <= t < start + timedelta(days=30) for t in tries) <= retries.NETWORK_TRIES_IN_30_DAYS
    assert retries.next_try(1, retries.NETWORK_TRIES_IN_30_DAYS, failed_at=failed_at) is None
