"""What the ledger asks of a payment processor, and what the processor's signed events
become (notices), whichever processor it is. Types only; no I/O."""

from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

from services.ledger.payments.retries import Decline


class InvalidNotice(ValueError):
    """An event whose signature does not verify, or that is not an event at all."""

    def __init__(self, reason: Literal["invalid-signature", "invalid-payload"], detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class GatewayUnavailable(Exception):
    """The processor did not answer, or answered with an error that is not the card's."""


@dataclass(frozen=True, kw_only=True)
class CheckoutOrder:
    tenant_id: str
    customer_id: str
    pack: str
    credits: int
    amount_minor: int
    currency: str
    save_card: bool
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class HostedCheckout:
    session_id: str
    url: str


@dataclass(frozen=True, kw_only=True)
class ReceivedPayment:
    """A payment the processor confirmed: the event that said so, the payment it is (its
    intent, or its checkout's session), the tenant and credits it buys, what was paid, and how
    it came (`checkout`, `auto_topup`, `payment_intent`)."""

    event_id: str
    payment_key: str
    tenant_id: str
    credits: int
    amount_minor: int
    currency: str
    source: str


@dataclass(frozen=True, kw_only=True)
class OffSessionCharge:
    """An auto top-up's charge of the customer's saved card; `refused_cards` are the payment
    methods a decline the networks forbid retrying refused (never charged again)."""

    attempt_id: UUID
    tenant_id: str
    customer_id: str
    credits: int
    amount_minor: int
    currency: str
    refused_cards: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ChargeOutcome:
    """`pending`: accepted, the credits come with the processor's success event;
    `succeeded`: that event came; `failed`: declined or in need of the cardholder
    (`failure_code` says which). An auto top-up attempt ends with one of the last two."""

    state: Literal["pending", "succeeded", "failed"]
    payment_intent: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    decline: Decline | None = None  # a failure's codes, as the processor and the card network gave them
    payment_method: str | None = None  # the card charged


# ---- notices: the processor's events, as the ledger acts on them -------------------------


@dataclass(frozen=True, kw_only=True)
class CheckoutPaid:
    session_id: str
    payment_intent: str | None
    customer_id: str | None
    tenant_id: str | None  # from the session's metadata, for sessions the ledger has no row of
    credits: int | None
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class CheckoutAwaitingPayment:
    session_id: str


@dataclass(frozen=True)
class CheckoutClosed:
    session_id: str
    state: Literal["expired", "failed"]


@dataclass(frozen=True, kw_only=True)
class IntentSucceeded:
    payment_intent: str
    attempt_id: UUID | None  # set for the ledger's own auto top-ups
    tenant_id: str | None
    credits: int | None
    amount_minor: int
    currency: str


@dataclass(frozen=True, kw_only=True)
class IntentFailed:
    payment_intent: str
    attempt_id: UUID | None
    failure_code: str
    failure_message: str
    decline: Decline | None = None
    payment_method: str | None = None


@dataclass(frozen=True)
class ChargeRefunded:
    payment_intent: str
    charge_id: str
    refunded_minor: int  # cumulative, as the processor reports it


@dataclass(frozen=True, kw_only=True)
class DisputeChanged:
    dispute_id: str
    payment_intent: str
    amount_minor: int
    status: str


@dataclass(frozen=True)
class NothingToDo:
    pass


Action = (CheckoutPaid | CheckoutAwaitingPayment | CheckoutClosed | IntentSucceeded | IntentFailed | ChargeRefunded
          | DisputeChanged | NothingToDo)


@dataclass(frozen=True, kw_only=True)
class Notice:
    event_id: str
    type: str
    object_id: str | None
    action: Action


class PaymentGateway(Protocol):
    """A payment processor. Calls may be slow: never made while a ledger row is locked."""

    name: str

    async def create_customer(self, tenant_id: str) -> str: ...

    async def open_checkout(self, order: CheckoutOrder) -> HostedCheckout: ...

    async def charge_saved_card(self, charge: OffSessionCharge) -> ChargeOutcome: ...

    def read_notice(self, payload: bytes, signature: str | None) -> Notice: ...
