"""The ledger's operations over its store and its domain: a batch of events applied to a
`Book` loaded (locked) for it, the sweep of holds and grants past their time, and the
operations that do not come from the bus (grants, report policies, alerts, failed top-ups).
Each opens its transaction, lets the pure domain decide, and writes back what changed with
the events it publishes."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.common.audit import Action, operator_actor, record_action
from services.common.bus import Envelope, InboxClaim, Publish, erase_prompt_from_outbox, retry_races
from services.common.contracts import (
    AuditRecorded,
    CreditsGranted,
    Event,
    JobErased,
    JobEvent,
    JobSubmitted,
    OutputReported,
    ReservationSettled,
)
from services.common.db import Conn
from services.common.runtime import GRPC_DRAIN_S, ServiceRuntime
from services.common.supervision import every, stop_tasks, supervise
from services.ledger import alerts, audit, metrics, training
from services.ledger.alerts import FailedTopUp
from services.ledger.domain import Book
from services.ledger.grpc import LedgerService, start_grpc_server
from services.ledger.handlers import SETTLING, consumed, decide, kept_aside
from services.ledger.key_caps import PERIODS, period_start
from services.ledger.payments.service import Payments
from services.ledger.payments.stripe_gateway import StripeAccount, StripeGateway
from services.ledger.pricebook import PriceBook, load_price_book
from services.ledger.records import CreditGrant
from services.ledger.settings import LedgerSettings
from services.ledger.store import JobsRead, KeysSpent, accounts, load_book, read_claimed, write_book
from services.ledger.store.payments import request_due_topups
from services.ledger.store.training import training_subjects


class Ledger:
    """A batch of the bus's events, or a sweep, decided on a `Book` loaded for it and written
    back in the caller's transaction."""

    def __init__(self, settings: LedgerSettings, price_book: PriceBook) -> None:
        self.settings, self.price_book = settings, price_book

    def new_book(self) -> Book:
        prices = self.price_book.at(datetime.now(UTC))
        return Book(price_book=self.price_book, credit_value_micro_usd=prices.credit_value_micro_usd,
                    reservation_timeout=timedelta(seconds=self.settings.reservation_timeout_s),
                    report_window=timedelta(seconds=self.settings.report_window_s))

    async def open_book(self, conn: Conn, tenants: Iterable[str], *, jobs: Iterable[UUID] = ()) -> Book:
        return await load_book(conn, self.new_book(), tenant_ids=tenants, job_ids=jobs)

    async def apply_events(self, conn: Conn, claim: InboxClaim, publish: Publish) -> None:
        """Apply a batch: the statement that reads the balances of the tenants it names and
        locks its jobs claims it in the inbox; what is fresh is then applied."""
        book, now = self.new_book(), datetime.now(UTC)
        events = [e.event for e in claim.envelopes if not kept_aside(e)]
        jobs = [e for e in events if isinstance(e, JobEvent)]
        spent = KeysSpent(api_key_ids={e.job.api_key_id for e in jobs if isinstance(e, JobSubmitted) and e.job.api_key_id},
                          starts=[period_start(period, now.date()) for period in PERIODS])
        await read_claimed(conn, book, claim=claim, tenant_ids={e.tenant_id for e in jobs}, spent=spent,
                           jobs=JobsRead(jobs={e.job_id for e in jobs}, subjects=training_subjects(events),
                                         costs_of=[e.job_id for e in events if isinstance(e, SETTLING)],
                                         reports_of=[e.job_id for e in events if isinstance(e, OutputReported)]))
        fresh = claim.claimed or []
        await audit.keep(conn, [e for e in fresh if isinstance(e.event, AuditRecorded)])
        for erased in {e.event.job_id for e in fresh if isinstance(e.event, JobErased)}:
            await erase_prompt_from_outbox(conn, erased)  # the billing record stays as it is
        envelopes = [e for e in fresh if not kept_aside(e)]
        if not envelopes:
            return
        published = publish.statement([(out, envelope) for envelope in envelopes
                                       for out in decide(book, consumed(envelope.event), now=now) if out])
        await write_book(conn, book, published=published)  # balances last: the hot rows stay locked only until commit
        if self.settings.stripe_api_key is not None:  # auto top-up charges through Stripe
            await request_due_topups(conn, book.changed_accounts, packs=self.price_book.at(now).credit_packs, now=now)

    async def sweep(self, conn: Conn, now: datetime, *, limit: int = 500) -> list[Event]:
        """Void holds past their timeout and expire grants past their date."""
        due = await accounts.due_for_sweep(conn, now, limit=limit)
        if not due:
            return []
        book = await self.open_book(conn, {r["tenant_id"] for r in due}, jobs={r["job_id"] for r in due if r["job_id"]})
        events = book.expire_due(now)
        events += [released for e in list(events) if isinstance(e, ReservationSettled)
                   for released in training.released_with_job(book, e.job_id, now=now)]
        await write_book(conn, book)
        return [e for e in events if e]


class LedgerApp:
    """The ledger's runtime and the operations that do not come from Kafka."""

    def __init__(self, settings: LedgerSettings, runtime: ServiceRuntime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or ServiceRuntime("ledger", settings, migrations_package="services.ledger")
        self.price_book = load_price_book(settings.price_book_path)
        self.ledger = Ledger(settings, self.price_book)
        self.runtime.relay.observers.append(metrics.count_published)
        self.payments = payments_of(self, settings)

    async def grant(self, grant: CreditGrant, actor: str | None = None) -> CreditsGranted:
        """Grant credits; an operator's grant (`actor`) is recorded in the audit trail with it."""
        async def once() -> CreditsGranted:
            async with self.runtime.pool.connection() as conn, conn.transaction():
                granted = await self.grant_in(conn, grant)
                if actor:
                    await self.audit(conn, await record_action(self.runtime, conn, action=Action(
                        actor=actor, name="credits.grant", target=f"tenant:{grant.tenant_id}", tenant_id=grant.tenant_id,
                        details={"credits": grant.amount, "reason": grant.reason, "grant_id": str(granted.grant_id),
                         "expires_at": _iso_or_none(grant.expires_at)})))
                return granted

        granted = await retry_races(once)
        self.runtime.relay.notify()
        return granted

    async def grant_in(self, conn: Conn, grant: CreditGrant) -> CreditsGranted:
        """Grant inside the caller's transaction; the caller notifies the relay after commit."""
        book = await self.ledger.open_book(conn, [grant.tenant_id])
        granted = book.grant(grant, datetime.now(UTC))
        paid = book.pay_debt(grant.tenant_id, grant.payment_id)  # a tenant that owes pays its debt first
        await write_book(conn, book)
        for event in (granted, paid):
            if event is not None:
                await self.runtime.emit(conn, event)
        return granted

    async def audit(self, conn: Conn, recorded: Envelope) -> None:
        """Keep an action of the ledger's own (`record_action` published it like any service's)
        in the trail at once: the ledger does not consume its own topic."""
        await audit.keep(conn, [recorded])

    async def set_report_policy(self, tenant_id: str, policy: str, *, actor: str) -> bool:
        async with self.runtime.pool.connection() as conn, conn.transaction():
            previous = await accounts.lock_report_policy(conn, tenant_id)
            if previous is None:
                return False
            await accounts.set_report_policy(conn, tenant_id, policy=policy)
            await self.audit(conn, await record_action(self.runtime, conn, action=Action(
                actor=actor, name="report_policy.set", target=f"tenant:{tenant_id}", tenant_id=tenant_id,
                details={"report_policy": policy, "previous": previous})))
        self.runtime.relay.notify()
        return True

    async def sweep_once(self, now: datetime | None = None) -> int:
        async def once() -> list[Event]:
            async with self.runtime.pool.connection() as conn, conn.transaction():
                swept = await self.ledger.sweep(conn, now or datetime.now(UTC))
                for event in swept:
                    await self.runtime.emit(conn, event)
                return swept

        events = await retry_races(once)
        if events:
            self.runtime.relay.notify()
        return len(events)

    async def alert_once(self, now: datetime | None = None) -> int:
        """Raise the alerts due, each with its AccountAlerted, in one transaction."""
        async with self.runtime.pool.connection() as conn, conn.transaction():
            raised = await alerts.raise_due(conn, now)
            for event in raised:
                await self.runtime.emit(conn, event)
        if raised:
            self.runtime.relay.notify()
        return len(raised)

    async def topup_failed(self, failed: FailedTopUp) -> bool:
        """Tell the tenant an automatic top-up failed, once per payment; False when told before."""
        async with self.runtime.pool.connection() as conn, conn.transaction():
            event = await alerts.raise_once(conn, failed.crossing())
            if event is not None:
                await self.runtime.emit(conn, event)
        self.runtime.relay.notify()
        return event is not None

    def serve_in_background(self) -> None:
        """gRPC and the sweeper start and stop with the service."""
        state: dict[str, Any] = {}

        async def start() -> None:
            state["grpc"] = await start_grpc_server(LedgerService(self.runtime.pool, self.price_book), self.settings)
            state["sweeper"] = supervise("ledger-sweep", lambda: every(self.settings.sweep_interval_s, self.sweep_once,
                                                                      what="ledger-sweep"))
            state["alerts"] = supervise("ledger-alerts", lambda: every(self.settings.alert_interval_s, self.alert_once,
                                                                      what="ledger-alerts"))

        async def stop() -> None:
            await stop_tasks(state["sweeper"], state["alerts"])
            await state["grpc"].stop(grace=GRPC_DRAIN_S)

        self.runtime.startup_hooks.append(start)
        self.runtime.shutdown_hooks.append(stop)


def payments_of(ledger: LedgerApp, settings: LedgerSettings) -> Payments | None:
    """Payments through Stripe, once its webhook secret is set (checkouts and auto top-ups also
    need its API key)."""
    if settings.payment_webhook_secret is None:
        return None
    # Without an API key only the webhook works: the gateway is never called (require_api_key).
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else "sk_unset"
    gateway = StripeGateway(StripeAccount(api_key=key, webhook_secret=settings.payment_webhook_secret.get_secret_value(),
                                          tolerance_s=settings.payment_webhook_tolerance_s, api_base=settings.stripe_api_base))
    return Payments(ledger, gateway, settings=settings)


async def grant(settings: LedgerSettings, grant: CreditGrant) -> int:
    """Grant credits through the ledger's own code and outbox (used by seeding and the CLI)."""
    ledger = LedgerApp(settings)
    await ledger.runtime.start()
    try:
        granted = await ledger.grant(grant, operator_actor("cli"))
        await ledger.runtime.relay.relay_batch()
    finally:
        await ledger.runtime.stop()
    return granted.available_after


def _iso_or_none(when: datetime | None) -> str | None:
    return when.isoformat() if when else None
