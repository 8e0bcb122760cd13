"""The ledger asserts what must hold where it decides a change: a state planted broken (holds
beyond the balance, a hold of a negative amount, a negative debt or token count) is caught
by the decision that meets it, not written to the books."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.ledger.domain import Book
from services.ledger.pricebook import load_price_book
from services.ledger.records import Account, CreditGrant, DeliveryRecord, Takeback, Transfer

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def book_with(account: Account, *transfers: Transfer) -> Book:
    book = Book(price_book=load_price_book(), credit_value_micro_usd=10_000, reservation_timeout=timedelta(days=1), report_window=timedelta(days=7))
    book.accounts[account.tenant_id] = account
    book.loaded_accounts[account.tenant_id] = (account.posted, account.pending, account.retry_tokens)
    for transfer in transfers:
        book.transfers[transfer.job_id] = transfer
    return book


def hold(amount: int, tenant: str = "t") -> Transfer:
    return Transfer(id=uuid.uuid4(), job_id=uuid.uuid4(), tenant_id=tenant, amount=amount, unit_price=10, images=1, tokens_held=0, tier="stable",
                    pricebook_version="2026-11-01", max_provider_spend=0, timeout_at=NOW + timedelta(days=1))


def test_holds_beyond_the_balance_are_caught_by_the_next_decision():
    book = book_with(Account(tenant_id="t", posted=5, pending=10))
    with pytest.raises(AssertionError, match="holds beyond the balance"):
        book.grant(CreditGrant(tenant_id="t", amount=1, source="admin", reason="top-up"), NOW)


def test_a_settlement_beyond_its_hold_is_caught():
    negative = hold(-10)
    book = book_with(Account(tenant_id="t", posted=100, pending=0), negative)
    with pytest.raises(AssertionError):
        book.settle(negative.job_id, DeliveryRecord(1), now=NOW)
    assert not book.entries and not book.changed_transfers  # nothing of the decision was recorded


def test_a_negative_debt_or_token_count_is_caught():
    with pytest.raises(AssertionError, match="negative tokens or debt"):
        book_with(Account(tenant_id="t", posted=10, owed=-5)).reclaim(Takeback(tenant_id="t", amount=0, cause="refund", payment_id="pi_1"))
    with pytest.raises(AssertionError, match="negative tokens or debt"):
        book_with(Account(tenant_id="t", posted=10, retry_tokens=-1)).grant(CreditGrant(tenant_id="t", amount=1, source="admin", reason="top-up"), NOW)


def test_a_hold_settled_after_a_stale_read_passes():
    """A batch that read the balances before another committed the hold it now settles sees
    pending below zero: the change is a delta the database judges, and no invariant breaks."""
    late = hold(10)
    book = book_with(Account(tenant_id="t", posted=10, pending=0), late)
    settled = book.settle(late.job_id, DeliveryRecord(0, outcome="voided"), now=NOW)
    assert settled is not None and settled.released == 10
    assert book.account_deltas() == [("t", 0, -10, 0)]
