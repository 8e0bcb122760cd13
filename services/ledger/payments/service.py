"""Payments: checkouts opened for a tenant, the processor's notices applied (each in one
transaction with the record of its event id, so a repeat changes nothing), and auto top-ups
charged off-session. No processor call is made while a ledger row is locked."""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from psycopg.rows import DictRow

from services.common.bus import retry_races
from services.common.contracts import CreditsGranted, CreditsReclaimed, Event
from services.common.db import Conn
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ledger.domain import Book
from services.ledger.payments import rules
from services.ledger.payments.auto_topup import AutoTopUps
from services.ledger.payments.gateway import (
    Action,
    ChargeOutcome,
    ChargeRefunded,
    CheckoutAwaitingPayment,
    CheckoutClosed,
    CheckoutOrder,
    CheckoutPaid,
    DisputeChanged,
    GatewayUnavailable,
    IntentFailed,
    IntentSucceeded,
    NothingToDo,
    Notice,
    PaymentGateway,
    ReceivedPayment,
)
from services.ledger.payments.rules import AutoTopUpRule, CheckoutAsked
from services.ledger.pricebook import CreditPack, PriceBook
from services.ledger.records import CreditGrant, DisputeHold, Takeback
from services.ledger.settings import LedgerSettings
from services.ledger.store import payments as payment_store
from services.ledger.store import write_book

T = TypeVar("T")


class Books(Protocol):
    async def open_book(self, conn: Conn, tenants: Iterable[str], *, jobs: Iterable[UUID] = ...) -> Book: ...


class LedgerOperations(Protocol):
    """What payments need of the ledger: its runtime and price book, its books, and grants
    made in the caller's transaction."""

    @property
    def runtime(self) -> ServiceRuntime: ...
    @property
    def price_book(self) -> PriceBook: ...
    @property
    def ledger(self) -> Books: ...

    async def grant_in(self, conn: Conn, grant: CreditGrant) -> CreditsGranted: ...


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What a notice did: `granted` credits (0 for none), `duplicate` for an event seen before."""

    granted: int = 0
    grant_id: str | None = None
    detail: str = ""
    duplicate: bool = False


class Payments:
    def __init__(self, ledger: LedgerOperations, gateway: PaymentGateway, *, settings: LedgerSettings) -> None:
        self.ledger, self.gateway, self.settings = ledger, gateway, settings
        self.runtime = ledger.runtime
        self.auto_topups = AutoTopUps(ledger, gateway, settings=settings)

    # ---- checkout ------------------------------------------------------------------------

    def require_api_key(self) -> None:
        if self.settings.stripe_api_key is None:
            raise Problem(status=404, slug="billing-disabled", detail="buying credits is off: set GENLINE_STRIPE_API_KEY")

    def pack(self, name: str) -> CreditPack:
        packs = self.ledger.price_book.at(datetime.now(UTC)).credit_packs
        if name not in packs:
            raise Problem(status=422, slug="unknown-credit-pack", detail=f"there is no credit pack {name!r}; the packs are {sorted(packs)}")
        return packs[name]

    async def customer(self, tenant_id: str) -> str:
        async with self.runtime.pool.connection() as conn:
            known = await payment_store.customer_of(conn, tenant_id)
        if known:
            return known
        made = await self._gateway(self.gateway.create_customer(tenant_id))
        async with self.runtime.pool.connection() as conn:
            return await payment_store.keep_customer(conn, tenant_id, customer_id=made)

    async def open_checkout(self, tenant_id: str, asked: CheckoutAsked) -> dict[str, Any]:
        self.require_api_key()
        pack_name, pack = asked.pack, self.pack(asked.pack)
        order = CheckoutOrder(tenant_id=tenant_id, customer_id=await self.customer(tenant_id), pack=pack_name, credits=pack.credits, amount_minor=pack.amount_minor,
                              currency=pack.currency, save_card=asked.save_card, success_url=asked.success_url, cancel_url=asked.cancel_url)
        hosted = await self._gateway(self.gateway.open_checkout(order))
        async with self.runtime.pool.connection() as conn:
            await payment_store.add_checkout(conn, order, hosted=hosted)
        return {"session_id": hosted.session_id, "url": hosted.url, "pack": pack_name, "credits": pack.credits,
                "amount_minor": pack.amount_minor, "currency": pack.currency}

    async def _gateway(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except GatewayUnavailable as error:
            raise Problem(status=503, slug="payments-unavailable", detail=f"the payment processor did not answer: {error}",
                          headers={"Retry-After": "5"}, extra={"retry_after": 5}) from None

    # ---- notices -------------------------------------------------------------------------

    async def apply(self, notice: Notice) -> Applied:
        applied = await retry_races(lambda: self._apply_once(notice))
        self.runtime.relay.notify()
        return applied

    async def _apply_once(self, notice: Notice) -> Applied:
        async with self.runtime.pool.connection() as conn, conn.transaction():
            if not await payment_store.record_event(conn, notice.event_id, kind=notice.type, object_id=notice.object_id):
                outcome = await payment_store.event_outcome(conn, notice.event_id)
                return Applied(detail=f"event {notice.event_id} was applied before: {outcome}", duplicate=True)
            if key := payment_key(notice.action):
                await payment_store.lock_payment(conn, key)
            applied = await self._act(conn, notice.event_id, action=notice.action)
            await payment_store.set_event_outcome(conn, notice.event_id, outcome=applied.detail)
            return applied

    async def _act(self, conn: Conn, event_id: str, *, action: Action) -> Applied:
        match action:
            case CheckoutPaid():
                return await self._checkout_paid(conn, event_id, paid=action)
            case CheckoutAwaitingPayment():
                if await payment_store.move_checkout(conn, action.session_id, state="awaiting_payment"):
                    return Applied(detail="the payment is not complete yet; credits come when it succeeds")
                return Applied(detail="the checkout had moved past awaiting payment; it stays as it was")
            case CheckoutClosed():
                moved = await payment_store.move_checkout(conn, action.session_id, state=action.state)
                return Applied(detail=f"the checkout {action.state}" if moved else
                               f"the checkout had ended before it {action.state}; it stays as it was")
            case IntentSucceeded():
                return await self._intent_succeeded(conn, event_id, paid=action)
            case IntentFailed():
                failure = ChargeOutcome(state="failed", payment_intent=action.payment_intent, failure_code=action.failure_code, failure_message=action.failure_message,
                                        decline=action.decline, payment_method=action.payment_method)
                failed = action.attempt_id and await self.auto_topups.fail_attempt(conn, action.attempt_id, failure=failure)
                return Applied(detail="auto top-up failed: " + action.failure_code if failed else "recorded")
            case ChargeRefunded():
                await payment_store.note_refund(conn, action.payment_intent, charge_id=action.charge_id, refunded_minor=action.refunded_minor)
                return Applied(detail=await self._settle_takebacks(conn, action.payment_intent) or "refund recorded")
            case DisputeChanged():
                await payment_store.note_dispute(conn, action)
                return Applied(detail=await self._settle_takebacks(conn, action.payment_intent) or "dispute recorded")
            case NothingToDo():
                return Applied(detail="this event type needs no action")

    async def _checkout_paid(self, conn: Conn, event_id: str, *, paid: CheckoutPaid) -> Applied:
        session = await payment_store.checkout(conn, paid.session_id)
        tenant_id = session["tenant_id"] if session else paid.tenant_id
        credits = session["credits"] if session else paid.credits
        if not tenant_id or not credits:
            return Applied(detail=f"checkout {paid.session_id} is not one of the ledger's; nothing granted")
        await payment_store.move_checkout(conn, paid.session_id, state="paid", payment_intent=paid.payment_intent)
        amount = paid.amount_minor or (session["amount_minor"] if session else 0)
        currency = paid.currency or (session["currency"] if session else "")
        return await self._grant_payment(conn, ReceivedPayment(event_id=event_id, payment_key=paid.payment_intent or paid.session_id,
                                                               tenant_id=tenant_id, credits=credits, amount_minor=amount, currency=currency, source="checkout"))

    async def _intent_succeeded(self, conn: Conn, event_id: str, *, paid: IntentSucceeded) -> Applied:
        if paid.attempt_id:
            attempt = await payment_store.attempt(conn, paid.attempt_id)
            if attempt is None:
                return Applied(detail=f"no auto top-up {paid.attempt_id}; nothing granted")
            if await payment_store.end_attempt(conn, paid.attempt_id, outcome=ChargeOutcome(state="succeeded", payment_intent=paid.payment_intent)):
                await payment_store.reset_failures(conn, attempt["tenant_id"])
            return await self._grant_payment(conn, ReceivedPayment(
                event_id=event_id, payment_key=paid.payment_intent, tenant_id=attempt["tenant_id"], credits=attempt["credits"], amount_minor=paid.amount_minor,
                currency=paid.currency, source="auto_topup"))
        if paid.tenant_id and paid.credits:  # a payment made elsewhere, naming its tenant and credits
            return await self._grant_payment(conn, ReceivedPayment(
                event_id=event_id, payment_key=paid.payment_intent, tenant_id=paid.tenant_id, credits=paid.credits, amount_minor=paid.amount_minor, currency=paid.currency,
                source="payment_intent"))
        return Applied(detail="the payment grants through its checkout")

    async def _grant_payment(self, conn: Conn, payment: ReceivedPayment) -> Applied:
        """Grant a payment's credits, once per payment whichever of its events comes first;
        then apply what refunds and disputes that arrived before it take back."""
        if not await payment_store.add_payment(conn, payment):
            return Applied(detail=f"payment {payment.payment_key} granted its credits before")
        granted = await self.ledger.grant_in(conn, CreditGrant(tenant_id=payment.tenant_id, amount=payment.credits, source="payment",
                                                               reason=f"payment {payment.payment_key}",
                                                               payment_id=payment.event_id))
        await payment_store.link_grant(conn, payment.event_id, grant_id=granted.grant_id)
        taken = await self._settle_takebacks(conn, payment.payment_key)
        return Applied(granted=payment.credits, grant_id=str(granted.grant_id),
                       detail=f"granted {payment.credits} credits" + (f"; {taken}" if taken else ""))

    # ---- refunds and disputes --------------------------------------------------------------

    async def _settle_takebacks(self, conn: Conn, payment_intent: str) -> str:
        """Bring the payment's credits in line with what the processor says was refunded and
        disputed (each notice says it whole, so any order converges)."""
        payment = await payment_store.payment_by_intent(conn, payment_intent)
        if payment is None:
            return ""  # applied when the payment itself arrives
        done = [await self._take_refund(conn, payment)]
        for dispute in await payment_store.disputes_of(conn, payment_intent):
            done.append(await self._settle_dispute(conn, payment, dispute=dispute))
        return "; ".join(d for d in done if d)

    async def _take_refund(self, conn: Conn, payment: DictRow) -> str:
        refunded = await payment_store.refunded_minor(conn, payment["payment_intent"])
        due = rules.share_of_credits(payment["credits"], payment["amount_minor"], taken_minor=refunded)
        more = due - payment["credits_reclaimed"]
        if more <= 0:
            return ""
        refund = Takeback(tenant_id=payment["tenant_id"], amount=more, cause="refund", payment_id=payment["event_id"])
        await self._book(conn, refund.tenant_id, decide=lambda book: book.reclaim(refund))
        await payment_store.add_reclaimed(conn, payment["event_id"], credits=more)
        return f"refund took back {more} credits"

    async def _settle_dispute(self, conn: Conn, payment: DictRow, *, dispute: DictRow) -> str:
        if dispute["resolution"]:
            return ""
        tenant, pid = payment["tenant_id"], payment["event_id"]
        hold = DisputeHold(tenant_id=tenant, held=dispute["credits_held"], owed=dispute["credits_owed"], payment_id=pid)
        stage = rules.dispute_stage(dispute["status"])
        if stage in ("open", "lost") and hold.held + hold.owed == 0:
            share = rules.share_of_credits(payment["credits"], payment["amount_minor"], taken_minor=dispute["amount_minor"])
            taken = Takeback(tenant_id=tenant, amount=share, cause="dispute_held", payment_id=pid)
            [reclaimed] = await self._book(conn, tenant, decide=lambda book: book.reclaim(taken))
            assert isinstance(reclaimed, CreditsReclaimed)
            hold = DisputeHold(tenant_id=tenant, held=reclaimed.amount, owed=reclaimed.owed_change, payment_id=pid)
            await payment_store.pause_rule(conn, tenant, reason=f"dispute {dispute['dispute_id']}")
        if stage == "open":
            await payment_store.save_dispute(conn, dispute["dispute_id"], hold=hold, resolution=None)
            return f"dispute holds {hold.held + hold.owed} credits"
        if stage == "lost":
            await self._book(conn, tenant, decide=lambda book: book.charge_back(hold))
        else:
            await self._book(conn, tenant, decide=lambda book: self._release(book, hold))
        await payment_store.save_dispute(conn, dispute["dispute_id"], hold=hold, resolution=stage)
        return f"dispute {stage}: {hold.held + hold.owed} credits " + ("debited" if stage == "lost" else "released")

    @staticmethod
    def _release(book: Book, won: DisputeHold) -> list[Event]:
        events: list[Event] = []
        if won.held:
            events.append(book.grant(CreditGrant(tenant_id=won.tenant_id, amount=won.held, source="dispute_won",
                                                 reason=f"dispute won {won.payment_id}"), datetime.now(UTC)))
        if won.owed:
            events.append(book.forgive(Takeback(tenant_id=won.tenant_id, amount=won.owed, cause="dispute_won", payment_id=won.payment_id)))
        return events

    async def _book(self, conn: Conn, tenant_id: str,
                    *, decide: Callable[[Book], Event | list[Event]]) -> list[Event]:
        """Open the tenant's book, let `decide` change it, write it back and emit its events."""
        book = await self.ledger.ledger.open_book(conn, [tenant_id])
        decided = decide(book)
        events = decided if isinstance(decided, list) else [decided]
        await write_book(conn, book)
        for event in events:
            await self.runtime.emit(conn, event)
        return events

    # ---- auto top-up (auto_topup.py) -----------------------------------------------------

    async def set_auto_topup(self, tenant_id: str, rule: AutoTopUpRule) -> dict[str, Any]:
        self.require_api_key()
        self.pack(rule.pack)
        async with self.runtime.pool.connection() as conn, conn.transaction():
            await payment_store.set_rule(conn, tenant_id, rule=rule)
            await self.auto_topups.request_now(conn, tenant_id)
        return await self.billing(tenant_id)

    def packs(self) -> dict[str, tuple[int, int, str]]:
        packs = self.ledger.price_book.at(datetime.now(UTC)).credit_packs
        return {name: (p.credits, p.amount_minor, p.currency) for name, p in packs.items()}

    async def charge_due(self, now: datetime | None = None) -> int:
        return await self.auto_topups.charge_due(now)

    async def billing(self, tenant_id: str) -> dict[str, Any]:
        async with self.runtime.pool.connection() as conn:
            rule = await payment_store.rule_of(conn, tenant_id)
            return {"tenant_id": tenant_id, "has_customer": await payment_store.customer_of(conn, tenant_id) is not None,
                    "packs": [{"name": n, "credits": c, "amount_minor": a, "currency": cur}
                              for n, (c, a, cur) in sorted(self.packs().items(), key=lambda p: p[1][0])],
                    "auto_topup": rule, "checkouts": await payment_store.checkouts_of(conn, tenant_id),
                    "auto_topups": await payment_store.attempts_of(conn, tenant_id)}

    def serve_in_background(self) -> None:
        self.auto_topups.serve_in_background()


def payment_key(action: Action) -> str | None:
    """The payment a notice is about, as the payments table keys it."""
    match action:
        case CheckoutPaid():
            return action.payment_intent or action.session_id
        case IntentSucceeded() | IntentFailed() | ChargeRefunded() | DisputeChanged():
            return action.payment_intent
    return None
