"""The ledger's rules, as pure logic: grants, expiry, rollover, retry tokens, reports,
money taken back, and Stripe's events as the ledger reads them."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common.contracts import (
    CreditsExpired,
    CreditsGranted,
    CreditsRefunded,
    CreditsReserved,
    JobSpec,
    OutputReported,
    ReportDeclined,
    ReservationRejected,
    RetryTokenIssued,
)
from services.ledger.balances_replayed import replay_balances
from services.ledger.domain import Book
from services.ledger.payments.gateway import CheckoutAwaitingPayment, CheckoutPaid, InvalidNotice, NothingToDo
from services.ledger.payments.rules import share_of_credits
from services.ledger.payments.stripe_gateway import notice_of
from services.ledger.pricebook import load_price_book
from services.ledger.records import CreditGrant, DeliveryRecord, DisputeHold, Takeback

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def new_book() -> Book:
    return Book(price_book=load_price_book(), credit_value_micro_usd=10_000, reservation_timeout=3 * DAY, report_window=7 * DAY)


def spec(tenant="t", images=1, template="generic", tier="stable", tokens=False) -> JobSpec:
    return JobSpec(job_id=uuid.uuid4(), tenant_id=tenant, template=template, tier=tier, prompt="p", images=images,
                   candidates=images + 1, seed=1, submitted_at=NOW, use_retry_tokens=tokens)


def reported(job: JobSpec, tenant: str, n: int, reason: str, when: datetime) -> OutputReported:
    return OutputReported(job_id=job.job_id, tenant_id=tenant, n=n, reason=reason, reported_at=when)


def remaining(book: Book, tenant="t") -> dict[str, int]:
    return {g.source: g.remaining for g in book.grants[tenant]}


def test_charges_consume_the_earliest_expiring_grant_first():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=30, source="never", reason="r"), NOW)
    book.grant(CreditGrant(tenant_id="t", amount=30, source="late", reason="r", expires_at=NOW + 30 * DAY), NOW)
    book.grant(CreditGrant(tenant_id="t", amount=30, source="soon", reason="r", expires_at=NOW + 2 * DAY), NOW)
    job = spec(images=4)
    book.reserve(job, NOW)
    book.settle(job.job_id, DeliveryRecord(4), now=NOW)
    assert remaining(book) == {"never": 30, "late": 20, "soon": 0}
    assert book.accounts["t"].posted == 50 and book.accounts["t"].pending == 0


def test_tiers_price_differently_and_unknown_tiers_or_templates_are_rejected():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    fast = book.reserve(spec(images=2, tier="fast"), NOW)
    assert isinstance(fast, CreditsReserved) and fast.amount == 16 and fast.pricebook_version == "2026-11-01"
    assert fast.max_provider_spend_micro_usd == 2 * 40_000
    rejected = book.reserve(spec(template="poster"), NOW)
    assert isinstance(rejected, ReservationRejected) and rejected.reason_code == "unknown_template"


def test_expiry_spares_credits_held_by_a_reservation_and_takes_them_once_settled():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=40, source="admin", reason="r", expires_at=NOW + DAY), NOW)
    job = spec(images=3)  # holds 30
    book.reserve(job, NOW)
    events = book.expire_due(NOW + 2 * DAY)
    assert [type(e) for e in events] == [CreditsExpired] and events[0].amount == 10
    assert book.accounts["t"].available == 0
    book.settle(job.job_id, DeliveryRecord(1), now=NOW + 2 * DAY)  # charges 10, releases 20 of an expired grant
    later = book.expire_due(NOW + 2 * DAY)
    assert sum(e.amount for e in later) == 20 and book.accounts["t"].posted == 0


def test_an_unsettled_reservation_voids_itself_after_its_timeout():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=10, source="admin", reason="r"), NOW)
    job = spec()
    book.reserve(job, NOW)
    (settled,) = book.expire_due(NOW + 4 * DAY)
    assert settled.outcome == "expired" and settled.charged == 0 and book.accounts["t"].available == 10


def test_a_rollover_grant_moves_its_unused_credits_into_a_new_grant_once():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=50, source="monthly", reason="r", expires_at=NOW + DAY, rollover_days=30), NOW)
    events = book.expire_due(NOW + 2 * DAY)
    assert [type(e) for e in events] == [CreditsExpired, CreditsGranted]
    rolled = events[1]
    assert rolled.source == "rollover" and rolled.amount == 50 and rolled.expires_at == NOW + 31 * DAY
    assert book.accounts["t"].available == 50
    assert [type(e) for e in book.expire_due(NOW + 40 * DAY)] == [CreditsExpired]  # rolls over only once


def test_retry_tokens_pay_for_images_before_credits():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    book.accounts["t"].report_policy = "retry_token"
    job = spec(images=2)
    book.reserve(job, NOW)
    book.settle(job.job_id, DeliveryRecord(2), now=NOW)
    assert isinstance(book.report(reported(job, "t", 1, "blurry", NOW + DAY)), RetryTokenIssued)
    assert book.accounts["t"].retry_tokens == 1
    paid_with_token = spec(images=2, tokens=True)
    reserved = book.reserve(paid_with_token, NOW)
    assert (reserved.amount, reserved.tokens_held) == (10, 1)
    settled = book.settle(paid_with_token.job_id, DeliveryRecord(1), now=NOW)  # one delivered: the token pays for it
    assert (settled.charged, settled.tokens_used, settled.tokens_returned) == (0, 1, 0)


def test_reports_are_refunded_once_within_the_window_and_declined_otherwise():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r"), NOW)
    job = spec(images=2, template="headshot")
    book.reserve(job, NOW)
    book.settle(job.job_id, DeliveryRecord(2), now=NOW)
    refund = book.report(reported(job, "t", 2, "two noses", NOW + DAY))
    assert isinstance(refund, CreditsRefunded) and refund.amount == 20 and book.accounts["t"].available == 80
    for n, when, why in [(2, NOW + DAY, "reported before"), (3, NOW + DAY, "was not delivered"),
                         (1, NOW + 8 * DAY, "within")]:
        declined = book.report(reported(job, "t", n, "bad", when))
        assert isinstance(declined, ReportDeclined) and why in declined.reason
    assert isinstance(book.report(reported(job, "someone-else", 1, "bad", NOW)), ReportDeclined)


def test_replaying_the_events_gives_the_same_balances():
    book, events = new_book(), []
    events.append(book.grant(CreditGrant(tenant_id="t", amount=100, source="admin", reason="r", expires_at=NOW + DAY), NOW))
    jobs = [spec(images=i % 3 + 1) for i in range(6)]
    events += [book.reserve(j, NOW) for j in jobs]
    events += [book.settle(j.job_id, DeliveryRecord(i % 2), now=NOW) for i, j in enumerate(jobs[:4])]
    events += book.expire_due(NOW + 2 * DAY)
    replayed = replay_balances(events)["t"]
    account = book.accounts["t"]
    assert (replayed.posted, replayed.pending) == (account.posted, account.pending)


def test_a_refused_reservation_opens_no_account_in_the_replay_as_in_the_book():
    book = new_book()
    refused = book.reserve(spec(tenant="penniless"), NOW)
    assert isinstance(refused, ReservationRejected) and "penniless" not in book.accounts
    assert "penniless" not in replay_balances([refused])


def test_money_taken_back_beyond_the_balance_is_owed_refuses_new_jobs_and_is_paid_by_the_next_grant():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=100, source="payment", reason="paid"), NOW)
    held = book.reserve(spec(tenant="t", images=6), NOW)  # 60 held for a running job
    assert isinstance(held, CreditsReserved)

    reclaimed = book.reclaim(Takeback(tenant_id="t", amount=100, cause="refund", payment_id="evt_1"))

    assert (reclaimed.amount, reclaimed.owed_change, reclaimed.owed_after) == (40, 60, 60)
    assert (book.accounts["t"].posted, book.accounts["t"].pending, book.accounts["t"].owed) == (60, 60, 60)
    refused = book.reserve(spec(tenant="t"), NOW)
    assert isinstance(refused, ReservationRejected) and refused.reason_code == "account_in_debt"
    assert "owes 60 credits" in refused.reason
    granted = book.grant(CreditGrant(tenant_id="t", amount=100, source="payment", reason="paid again"), NOW)
    paid = book.pay_debt("t", "evt_2")
    assert paid is not None and (paid.amount, paid.owed_change, paid.owed_after) == (60, -60, 0)
    replayed = replay_balances([book_grant_event(100), held, reclaimed, granted, paid])["t"]
    assert (replayed.posted, replayed.pending, replayed.owed) == (100, 60, 0) == (
        book.accounts["t"].posted, book.accounts["t"].pending, book.accounts["t"].owed)


def book_grant_event(amount: int) -> CreditsGranted:
    return CreditsGranted(tenant_id="t", amount=amount, reason="paid", available_after=amount)


def test_a_dispute_hold_journals_to_the_dispute_account_and_a_loss_moves_it_to_chargebacks():
    book = new_book()
    book.grant(CreditGrant(tenant_id="t", amount=50, source="payment", reason="paid"), NOW)
    book.reclaim(Takeback(tenant_id="t", amount=30, cause="dispute_held", payment_id="evt_1"))
    book.charge_back(DisputeHold(tenant_id="t", held=30, owed=0, payment_id="evt_1"))
    lines = [(e.kind, e.amount, e.debit_account, e.credit_account) for e in book.entries[1:]]
    assert lines == [("reclaim", 30, "tenant:t", "platform:disputes"),
                     ("chargeback", 30, "platform:disputes", "platform:chargebacks")]
    assert book.accounts["t"].available == 20


@pytest.mark.parametrize("credits, paid, taken, share", [
    (5000, 4500, 900, 1000), (5000, 4500, 4500, 5000), (1000, 1000, 333, 333), (1000, 1000, 2000, 1000),
    (1000, 1000, 0, 0)])
def test_the_share_of_credits_taken_back_follows_the_money_rounded_down(credits, paid, taken, share):
    assert share_of_credits(credits, paid, taken_minor=taken) == share


def stripe_event(kind: str, obj: dict) -> dict:
    return {"id": "evt_1", "object": "event", "type": kind, "data": {"object": obj}}


def test_a_checkout_is_paid_only_when_stripe_says_paid():
    session = {"id": "cs_1", "payment_intent": "pi_1", "customer": "cus_1", "amount_total": 1000,
               "currency": "usd", "metadata": {"genline_tenant": "acme", "genline_credits": "1000"}}
    waiting = notice_of(stripe_event("checkout.session.completed", session | {"payment_status": "unpaid"}))
    paid = notice_of(stripe_event("checkout.session.async_payment_succeeded", session | {"payment_status": "paid"}))
    assert isinstance(waiting.action, CheckoutAwaitingPayment)
    assert isinstance(paid.action, CheckoutPaid) and (paid.action.tenant_id, paid.action.credits) == ("acme", 1000)
    assert isinstance(notice_of(stripe_event("customer.created", {"id": "cus_1"})).action, NothingToDo)


@pytest.mark.parametrize("event", [
    {"type": "charge.refunded", "data": {"object": {}}},
    stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1"}),
    stripe_event("checkout.session.completed", {"id": "cs_1", "payment_status": "paid", "metadata": ["not", "a", "map"]}),
    stripe_event("payment_intent.succeeded", {"id": "pi_1", "amount": 5, "currency": "usd",
                                              "metadata": {"genline_tenant": "Not A Tenant!", "genline_credits": "5"}}),
    stripe_event("payment_intent.succeeded", {"id": "pi_1", "amount": 5, "currency": "usd",
                                              "metadata": {"genline_tenant": "acme", "genline_credits": "-5"}}),
], ids=["no-id", "no-amount-refunded", "metadata-not-a-map", "bad-tenant", "negative-credits"])
def test_an_event_without_what_it_needs_is_refused(event):
    with pytest.raises(InvalidNotice):
        notice_of(event)
