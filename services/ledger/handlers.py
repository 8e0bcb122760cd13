"""Ledger handlers: events in, credits moved, events out — a batch per transaction.

Every operation loads the state it touches into a `Book` (locking it), lets the pure
domain decide, and writes back what changed, in the same transaction as the inbox and
outbox rows.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias, assert_never, get_args
from uuid import UUID

import psycopg

from services.common import contracts
from services.common.bus import Envelope, InboxClaim, Publish, erase_prompt_from_outbox
from services.common.contracts import (
    AuditRecorded,
    CandidatesGenerated,
    DeliveryFailed,
    Event,
    GenerationFailed,
    JobCanceled,
    JobClosed,
    JobDelivered,
    JobErased,
    JobEvent,
    JobSubmitted,
    OutputReported,
    ScoringFailed,
)
from services.ledger import audit
from services.ledger.domain import Book
from services.ledger.key_caps import PERIODS, period_start
from services.ledger.payments.store import request_due_topups
from services.ledger.pricebook import PriceBook
from services.ledger.settings import LedgerSettings
from services.ledger.store import load_book, read_balances, read_jobs, read_key_spend, write_book

# What the ledger consumes (app.py's on_batch); one added here without its branch in `decide`
# fails the type check (assert_never).
Consumed: TypeAlias = (JobSubmitted | JobDelivered | GenerationFailed | ScoringFailed | DeliveryFailed
                       | CandidatesGenerated | OutputReported | JobCanceled | JobClosed | AuditRecorded | JobErased)
CONSUMED: tuple[type[Event], ...] = get_args(Consumed)
# Each settles its job's reservation; the first to arrive settles it, the others change nothing.
SETTLING = (JobDelivered, GenerationFailed, ScoringFailed, DeliveryFailed, JobCanceled, JobClosed)


# The events on the topics the ledger reads that it has no use for. A type new on those topics is
# handled (Consumed) or named here, or tests/common/test_event_branches.py fails.
PASSED_OVER: tuple[type[contracts.Event], ...] = (
    contracts.JobCancelRequested, contracts.JobFinished, contracts.JobProgressed, contracts.RetentionSet,
    contracts.AttemptStarted, contracts.CandidatesStored, contracts.CandidatesChecked, contracts.CandidatesScored,
    contracts.RegenerationRequested, contracts.WebhookSent,
)


class Ledger:
    def __init__(self, settings: LedgerSettings, price_book: PriceBook) -> None:
        self.settings, self.price_book = settings, price_book

    def new_book(self) -> Book:
        prices = self.price_book.at(datetime.now(UTC))
        return Book(self.price_book, prices.credit_value_micro_usd,
                    timedelta(seconds=self.settings.reservation_timeout_s),
                    timedelta(seconds=self.settings.report_window_s))

    async def open_book(self, conn: psycopg.AsyncConnection, tenants: Iterable[str], jobs: Iterable[UUID] = (),
                        **only) -> Book:
        return await load_book(conn, self.new_book(), tenants, jobs, **only)

    async def apply_events(self, conn: psycopg.AsyncConnection, claim: InboxClaim, publish: Publish) -> None:
        """Apply a batch: the statement that reads the balances of the tenants it names claims
        it in the inbox; what is fresh is then applied."""
        book = self.new_book()
        await read_balances(conn, book, {e.event.tenant_id for e in claim.envelopes if not _kept_aside(e)}, claim)
        fresh = claim.claimed or []
        await audit.keep(conn, [e for e in fresh if isinstance(e.event, AuditRecorded)])
        for erased in {e.event.job_id for e in fresh if isinstance(e.event, JobErased)}:
            await erase_prompt_from_outbox(conn, erased)  # the billing record stays as it is
        envelopes = [e for e in fresh if not _kept_aside(e)]
        if not envelopes:
            return
        events = [e.event for e in envelopes]
        await read_jobs(conn, book, {e.job_id for e in events if isinstance(e, JobEvent)},
                        costs_of=[e.job_id for e in events if isinstance(e, SETTLING)],
                        reports_of=[e.job_id for e in events if isinstance(e, OutputReported)])
        now = datetime.now(UTC)
        await read_key_spend(conn, book, {e.job.api_key_id for e in events if isinstance(e, JobSubmitted)
                                          and e.job.api_key_id is not None},
                             [period_start(period, now.date()) for period in PERIODS])
        published = publish.statement([(out, envelope) for envelope in envelopes
                                       for out in decide(book, consumed(envelope.event), now) if out])
        await write_book(conn, book, published)  # balances last: the hot rows stay locked only until commit
        if self.settings.stripe_api_key is not None:  # auto top-up charges through Stripe
            await request_due_topups(conn, book.changed_accounts, self.price_book.at(now).credit_packs)

    async def sweep(self, conn: psycopg.AsyncConnection, now: datetime, limit: int = 500) -> list[Event]:
        """Void holds past their timeout and expire grants past their date."""
        due = await (await conn.execute(
            "SELECT tenant_id, job_id FROM transfers WHERE state = 'pending' AND timeout_at <= %s"
            " UNION ALL SELECT tenant_id, NULL FROM grants WHERE remaining > 0 AND expires_at <= %s LIMIT %s",
            [now, now, limit],
        )).fetchall()
        if not due:
            return []
        book = await self.open_book(conn, {r["tenant_id"] for r in due}, {r["job_id"] for r in due if r["job_id"]})
        events = book.expire_due(now)
        await write_book(conn, book)
        return [e for e in events if e]


def _kept_aside(envelope: Envelope) -> bool:
    """Events the ledger keeps (audit records) or acts on (erasures) without its book."""
    return isinstance(envelope.event, AuditRecorded | JobErased)


def consumed(event: Event) -> Consumed:
    assert isinstance(event, Consumed), f"the ledger consumes no {event.event_type}"  # on_batch(CONSUMED)
    return event


def decide(book: Book, event: Consumed, now: datetime) -> list[Event | None]:
    match event:
        case JobSubmitted():
            return [book.reserve(event.job, now)]
        case JobDelivered():
            return [book.settle(event.job_id, len(event.images), now, clip_ms=[i.duration_ms for i in event.images])]
        case GenerationFailed() | ScoringFailed() | DeliveryFailed():
            return [book.settle(event.job_id, 0, now, outcome="voided")]  # the platform's failure costs nothing
        case JobCanceled():
            return [book.close(event.job_id, event.tenant_id, event.final_state, now)]
        case JobClosed():
            return [book.close(event.job_id, event.tenant_id, event.final_state, now)]
        case CandidatesGenerated():
            for provider, cost in costs_by_provider(event).items():
                book.record_provider_cost(event.job_id, event.attempt, provider, cost)
            return []
        case OutputReported():
            return [book.report(event.job_id, event.tenant_id, event.n, event.reason, event.reported_at)]
        case AuditRecorded() | JobErased():  # kept aside, never in the book (_kept_aside)
            return []
        case _:
            assert_never(event)


def costs_by_provider(event: CandidatesGenerated) -> dict[str, int]:
    """The attempt's spend per provider called (fallbacks included), from its calls; what the
    calls do not account for goes to the provider of its first candidate."""
    costs: dict[str, int] = {}
    for call in event.calls:
        costs[call.provider] = costs.get(call.provider, 0) + call.cost_micro_usd
    rest = event.cost_micro_usd - sum(costs.values())
    if rest > 0 or not costs:
        provider = event.candidates[0].provider if event.candidates else "unknown"
        costs[provider] = costs.get(provider, 0) + max(rest, 0)
    return costs
