"""Evaluations charged, without I/O: images scored on their own (POST /v1/evaluations) are
charged at once, at the price book's price per image, as one journal line from the tenant to
revenue; never beyond what is available, and once per evaluation (the caller's store keeps it)."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.common.contracts import EvaluationCharged
from services.ledger.domain import Book, assert_holds_covered, insufficient_credits_reason
from services.ledger.records import REVENUE, Entry, tenant_account


@dataclass(frozen=True)
class EvaluationCharge:
    """An evaluation to charge: whose, which, and how many images it scored."""

    tenant_id: str
    evaluation_id: UUID
    images: int


@dataclass(frozen=True, kw_only=True)
class ChargeRefused:
    """Why an evaluation was not charged: its code (insufficient_credits, unpriced) and reason."""

    code: str
    reason: str
    required: int = 0
    available: int = 0


def charge_evaluation(book: Book, asked: EvaluationCharge, *, now: datetime) -> EvaluationCharged | ChargeRefused:
    prices = book.price_book.at(now)
    unit = prices.evaluation_price_per_image
    if unit is None:
        return ChargeRefused(code="unpriced", reason=f"price book {prices.version} has no price for evaluations")
    account = book.accounts.get(asked.tenant_id)
    amount = unit * asked.images
    available = account.available if account is not None else 0
    if account is None or account.owed > 0 or amount > available:
        return ChargeRefused(code="insufficient_credits", reason=insufficient_credits_reason(amount, available), required=amount, available=available)
    book._consume_grants(account, amount)  # the book's own rule: earliest-expiring grants first
    book.changed_accounts.add(asked.tenant_id)
    book._journal(Entry(tenant_id=asked.tenant_id, kind="charge", amount=amount, debit_account=tenant_account(asked.tenant_id), credit_account=REVENUE,
                        reason=f"evaluation {asked.evaluation_id}"))
    assert_holds_covered(account)
    return EvaluationCharged(tenant_id=asked.tenant_id, evaluation_id=asked.evaluation_id, images=asked.images,
                             unit_price=unit, amount=amount, pricebook_version=prices.version,
                             available_after=account.available, charged_at=now)
