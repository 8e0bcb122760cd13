"""Bulk work costs the price book's batch discount less: a batch's lines run at bulk priority
and are held and charged at the discounted price, in versions that have one."""

import uuid
from datetime import UTC, datetime, timedelta

from services.common.contracts import CreditsReserved, JobSpec
from services.ledger.domain import Book
from services.ledger.pricebook import load_price_book
from services.ledger.records import CreditGrant, DeliveryRecord

BATCHES_PRICED = datetime(2026, 11, 27, 12, tzinfo=UTC)
BEFORE_BATCHES = datetime(2026, 11, 20, 12, tzinfo=UTC)


def reserved(priority: str, when: datetime, template: str = "generic") -> CreditsReserved:
    book = Book(price_book=load_price_book(), credit_value_micro_usd=10_000, reservation_timeout=timedelta(days=1), report_window=timedelta(days=7))
    book.grant(CreditGrant(tenant_id="t", amount=1_000, source="admin", reason="r"), when)
    job = JobSpec(job_id=uuid.uuid4(), tenant_id="t", template=template, tier="stable", prompt="p", images=3,
                  candidates=4, seed=1, submitted_at=when, job_priority=priority)
    held = book.reserve(job, when)
    assert isinstance(held, CreditsReserved)
    settled = book.settle(job.job_id, DeliveryRecord(3), now=when)
    assert settled is not None and settled.charged == held.amount
    return held


def test_a_bulk_job_is_held_and_charged_at_half_price():
    interactive, bulk = reserved("interactive", BATCHES_PRICED), reserved("bulk", BATCHES_PRICED)
    assert (interactive.unit_price, interactive.amount) == (10, 30)
    assert (bulk.unit_price, bulk.amount, bulk.pricebook_version) == (5, 15, "2026-11-27")


def test_a_version_without_a_discount_prices_bulk_work_like_any():
    assert reserved("bulk", BEFORE_BATCHES).unit_price == 10


def test_the_discount_rounds_down_and_never_to_nothing():
    version = load_price_book().at(BATCHES_PRICED)
    assert [version.bulk_price(p) for p in (1, 5, 25)] == [1, 2, 12]
    assert version.evaluation_price_per_image == 1
