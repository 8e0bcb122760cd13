"""Auto top-up: the tenant's rule, the off-session charges it requests, and what a decline
does (`retries`: tried again hours then days later, or never, as the card networks allow).
No processor call is made while a ledger row is locked."""

import logging
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from psycopg.rows import DictRow

from services.common.contracts import AutoTopUpFailed
from services.common.db import Conn
from services.common.runtime import ServiceRuntime
from services.common.supervision import every, stop_tasks, supervise
from services.ledger import alerts
from services.ledger.payments import retries
from services.ledger.payments.gateway import ChargeOutcome, GatewayUnavailable, OffSessionCharge, PaymentGateway
from services.ledger.payments.retries import Decline
from services.ledger.pricebook import PriceBook
from services.ledger.settings import LedgerSettings
from services.ledger.store import payments as payment_store
from services.ledger.store.alerts import Crossing

log = logging.getLogger(__name__)


class TopUpLedger(Protocol):
    @property
    def runtime(self) -> ServiceRuntime: ...
    @property
    def price_book(self) -> PriceBook: ...


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


class AutoTopUps:
    def __init__(self, ledger: TopUpLedger, gateway: PaymentGateway, *, settings: LedgerSettings) -> None:
        self.ledger, self.gateway, self.settings = ledger, gateway, settings
        self.runtime = ledger.runtime

    def packs_at(self, now: datetime) -> Any:
        return self.ledger.price_book.at(now).credit_packs

    async def request_now(self, conn: Conn, tenant_id: str) -> None:
        """A top-up for a tenant whose rule was just set, if its balance is below it."""
        now = datetime.now(UTC)
        await payment_store.request_due_topups(conn, [tenant_id], packs=self.packs_at(now), now=now)

    async def charge_due(self, now: datetime | None = None) -> int:
        """Request the retries whose time has come (as of `now`), then charge the requested
        auto top-ups off-session, each with its attempt's idempotency key."""
        now = _now(now)
        async with self.runtime.pool.connection() as conn, conn.transaction():
            await payment_store.request_due_topups(conn, await payment_store.retries_due(conn, now),
                                                   packs=self.packs_at(now), now=now)
            attempts = await payment_store.claim_attempts(conn, self.settings.auto_topup_stale_s)
        for attempt in attempts:
            await self._charge(attempt, now)
        if attempts:
            self.runtime.relay.notify()
        return len(attempts)

    async def _charge(self, attempt: DictRow, now: datetime) -> None:
        async with self.runtime.pool.connection() as conn:
            customer = await payment_store.customer_of(conn, attempt["tenant_id"])
            refused = await payment_store.refused_cards(conn, attempt["tenant_id"])
        if customer is None:
            failure = ChargeOutcome(state="failed", payment_intent=None, failure_code="no_saved_card", failure_message="the account has no saved card to charge",
                                    decline=Decline(code="no_saved_card"))
        else:
            try:
                outcome = await self.gateway.charge_saved_card(OffSessionCharge(
                    attempt_id=attempt["id"], tenant_id=attempt["tenant_id"], customer_id=customer, credits=attempt["credits"], amount_minor=attempt["amount_minor"],
                    currency=attempt["currency"], refused_cards=tuple(refused)))
            except GatewayUnavailable as error:
                log.warning("auto top-up %s: the processor did not answer (%s); tried again later", attempt["id"], error)
                return
            if outcome.state == "pending":
                assert outcome.payment_intent is not None  # an accepted charge has its intent
                async with self.runtime.pool.connection() as conn:
                    await payment_store.attempt_charged(conn, attempt["id"], payment_intent=outcome.payment_intent)
                return
            failure = outcome
        async with self.runtime.pool.connection() as conn, conn.transaction():
            await self.fail_attempt(conn, attempt["id"], failure=failure, now=now)

    async def fail_attempt(self, conn: Conn, attempt_id: UUID, *, failure: ChargeOutcome,
                           now: datetime | None = None) -> bool:
        """Record a failed charge once, schedule its retry where the networks allow one (else
        pause the rule, and never charge a card they forbid again), and tell the tenant when
        the next try is."""
        now = _now(now)
        decline = failure.decline or Decline(code=failure.failure_code or "payment_failed")
        code, message = decline.shown, failure.failure_message or ""
        ended = await payment_store.end_attempt(conn, attempt_id, outcome=ChargeOutcome(
            state="failed", payment_intent=failure.payment_intent, failure_code=code, failure_message=message))
        if ended is None:
            return False
        tenant_id = ended["tenant_id"]
        in_a_row = await payment_store.count_failure(conn, tenant_id)
        refused = retries.refusal(decline)
        next_try = None if refused else retries.next_try(in_a_row, await payment_store.declined_lately(conn, tenant_id,
                                                                                                       now=now), failed_at=now)
        if refused and failure.payment_method:
            await payment_store.refuse_card(conn, tenant_id, payment_method=failure.payment_method, code=code)
        if next_try is None:
            why = f"{code}: {refused}" if refused else f"{in_a_row} declined charges in a row; last: {code}"
            await payment_store.pause_rule(conn, tenant_id, reason=why)
        else:
            await payment_store.retry_at(conn, tenant_id, at=next_try)
        told = next_try.isoformat() if next_try else None
        await self.runtime.emit(conn, AutoTopUpFailed(tenant_id=tenant_id, attempt_id=attempt_id, credits=ended["credits"],
                                                      failure_code=code, failure_message=message,
                                                      paused=next_try is None, next_try_at=next_try))
        # The tenant is told on its endpoints (billing.topup_failed), once per failed charge.
        details = {"attempt_id": str(attempt_id), "credits": ended["credits"], "failure_code": code,
                   "failure_message": message, "paused": next_try is None, "retried": next_try is not None,
                   "next_try_at": told, "why": refused or ("tried again then" if told else "the retries are spent")}
        crossing = Crossing(tenant_id=tenant_id, alert="billing.topup_failed", subject=str(attempt_id), details=details)
        if (alert := await alerts.raise_once(conn, crossing)) is not None:
            await self.runtime.emit(conn, alert)
        return True

    def serve_in_background(self) -> None:
        """The auto top-up charger starts and stops with the service."""
        state: dict[str, Any] = {}

        async def start() -> None:
            state["charger"] = supervise("auto-topup", lambda: every(self.settings.auto_topup_poll_s, self.charge_due,
                                                                     what="auto-topup"))

        async def stop() -> None:
            await stop_tasks(state["charger"])

        self.runtime.startup_hooks.append(start)
        self.runtime.shutdown_hooks.append(stop)
