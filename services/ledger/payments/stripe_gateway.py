"""Stripe through its official library: customers, Checkout Sessions in payment mode,
off-session PaymentIntents on a saved card, and webhook events verified with
`stripe.Webhook.construct_event` before anything is read from them."""

import json
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import stripe

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
    HostedCheckout,
    IntentFailed,
    IntentSucceeded,
    InvalidNotice,
    NothingToDo,
    Notice,
    OffSessionCharge,
)
from services.ledger.payments.retries import Decline

# The metadata the ledger writes on what it creates, and reads back from the events.
TENANT, CREDITS, PACK, ATTEMPT = "genline_tenant", "genline_credits", "genline_pack", "genline_auto_topup"
T = TypeVar("T")
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class StripeAccount:
    """The Stripe account the ledger works with: its API key, the secret its webhook events
    are signed with, how old a signed event may be, and where its API is (Stripe's own by
    default)."""

    api_key: str
    webhook_secret: str
    tolerance_s: int
    api_base: str | None = None


class StripeGateway:
    name = "stripe"

    def __init__(self, account: StripeAccount) -> None:
        self.client = stripe.StripeClient(account.api_key, max_network_retries=2,
                                          base_addresses={"api": account.api_base} if account.api_base else None)
        self.webhook_secret, self.tolerance_s = account.webhook_secret, account.tolerance_s

    async def create_customer(self, tenant_id: str) -> str:
        customer = await self._call(self.client.v1.customers.create_async(
            params={"description": f"Genline tenant {tenant_id}", "metadata": {TENANT: tenant_id}},
            options={"idempotency_key": f"genline-customer-{tenant_id}"}))
        return str(customer.id)

    async def open_checkout(self, order: CheckoutOrder) -> HostedCheckout:
        metadata = {TENANT: order.tenant_id, CREDITS: str(order.credits), PACK: order.pack}
        # Stripe's own TypedDicts describe this; built as plain data, and checked by its API.
        params: Any = {
            "mode": "payment", "customer": order.customer_id, "client_reference_id": order.tenant_id,
            "success_url": order.success_url, "cancel_url": order.cancel_url, "metadata": metadata,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": order.currency, "unit_amount": order.amount_minor,
                "product_data": {"name": f"{order.credits} Genline credits ({order.pack})"}}}],
            # The intent names its tenant but not the credits: a checkout grants through the
            # session's events only.
            "payment_intent_data": {"metadata": {TENANT: order.tenant_id, PACK: order.pack}}}
        if order.save_card:
            params["payment_intent_data"]["setup_future_usage"] = "off_session"
        session = await self._call(self.client.v1.checkout.sessions.create_async(params=params))
        assert session.url is not None  # a hosted checkout has the page it is hosted on
        return HostedCheckout(session.id, session.url)

    async def charge_saved_card(self, charge: OffSessionCharge) -> ChargeOutcome:
        cards = await self._call(self.client.v1.customers.payment_methods.list_async(
            charge.customer_id, params={"type": "card", "limit": 1}))
        usable = [card.id for card in cards.data if card.id not in charge.refused_cards]
        if not cards.data or not usable:
            code = "no_saved_card" if not cards.data else "card_refused_before"
            return ChargeOutcome(state="failed", payment_intent=None, failure_code=code, failure_message="the account has no saved card to charge" if not cards.data else
                                 "the saved card was declined before in a way that forbids charging it again;"
                                 " save another card through a checkout", decline=Decline(code=code))
        try:
            intent = await self.client.v1.payment_intents.create_async(params={
                "amount": charge.amount_minor, "currency": charge.currency, "customer": charge.customer_id,
                "payment_method": usable[0], "off_session": True, "confirm": True,
                "metadata": {TENANT: charge.tenant_id, CREDITS: str(charge.credits), ATTEMPT: str(charge.attempt_id)},
            }, options={"idempotency_key": f"genline-auto-topup-{charge.attempt_id}"})
        except stripe.CardError as error:  # declined, or the bank wants the cardholder
            details = error.error
            intent_id = details.payment_intent.id if details and details.payment_intent else None
            decline = Decline(code=error.code or "card_error", **{name: getattr(details, name, None) for name in (
                "decline_code", "advice_code", "network_decline_code", "network_advice_code")})
            return ChargeOutcome(state="failed", payment_intent=intent_id, failure_code=decline.shown, failure_message=error.user_message or str(error), decline=decline, payment_method=usable[0])
        except stripe.StripeError as error:
            raise GatewayUnavailable(str(error)) from error
        if intent.status in ("requires_action", "requires_payment_method", "canceled"):
            code = "authentication_required" if intent.status == "requires_action" else "payment_failed"
            return ChargeOutcome(state="failed", payment_intent=intent.id, failure_code=code, failure_message=f"the payment intent is {intent.status}", decline=Decline(code=code),
                                 payment_method=usable[0])
        return ChargeOutcome(state="pending", payment_intent=intent.id, payment_method=usable[0])

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except stripe.StripeError as error:
            raise GatewayUnavailable(str(error)) from error

    def read_notice(self, payload: bytes, signature: str | None) -> Notice:
        try:
            stripe.Webhook.construct_event(payload, signature or "", self.webhook_secret, self.tolerance_s)
        except stripe.SignatureVerificationError as error:
            raise InvalidNotice("invalid-signature", str(error) or "the signature does not verify") from None
        except ValueError as error:
            raise InvalidNotice("invalid-payload", f"the event is not JSON: {error}") from None
        return notice_of(json.loads(payload))


def notice_of(event: Any) -> Notice:
    """The signed event, as the ledger acts on it."""
    if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
            and 0 < len(event["id"]) <= 255 and "\x00" not in event["id"]
            and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict)):
        raise InvalidNotice("invalid-payload", "an event has an id, a type and data.object")
    obj = event["data"]["object"]
    try:
        action = action_of(event["type"], obj)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidNotice("invalid-payload", f"{event['type']} without the fields it needs: {error!r}") from None
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    return Notice(event_id=event["id"], type=event["type"], object_id=object_id, action=action)


def action_of(kind: str, obj: dict[str, Any]) -> Action:
    match kind:
        case "checkout.session.completed" | "checkout.session.async_payment_succeeded":
            if obj.get("payment_status") not in ("paid", "no_payment_required"):
                return CheckoutAwaitingPayment(obj["id"])
            metadata = obj.get("metadata") or {}
            return CheckoutPaid(session_id=obj["id"], payment_intent=_id(obj.get("payment_intent")), customer_id=_id(obj.get("customer")),
                                tenant_id=_tenant(metadata), credits=_credits(metadata), amount_minor=int(obj.get("amount_total") or 0),
                                currency=str(obj.get("currency") or ""))
        case "checkout.session.expired":
            return CheckoutClosed(obj["id"], "expired")
        case "checkout.session.async_payment_failed":
            return CheckoutClosed(obj["id"], "failed")
        case "payment_intent.succeeded":
            metadata = obj.get("metadata") or {}
            return IntentSucceeded(payment_intent=obj["id"], attempt_id=_attempt(metadata), tenant_id=_tenant(metadata), credits=_credits(metadata),
                                   amount_minor=int(obj.get("amount_received") or obj["amount"]), currency=str(obj["currency"]))
        case "payment_intent.payment_failed":
            error = obj.get("last_payment_error") or {}
            decline = Decline(code=str(error.get("code") or "payment_failed"), **{name: _text(error.get(name)) for name in (
                "decline_code", "advice_code", "network_decline_code", "network_advice_code")})
            return IntentFailed(payment_intent=obj["id"], attempt_id=_attempt(obj.get("metadata") or {}), failure_code=decline.shown,
                                failure_message=str(error.get("message") or "the payment failed"), decline=decline,
                                payment_method=_id(error.get("payment_method") or obj.get("payment_method")))
        case "charge.refunded" if obj.get("payment_intent"):  # a charge without one was never the ledger's
            return ChargeRefunded(str(_id(obj["payment_intent"])), obj["id"], int(obj["amount_refunded"]))
        case "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" \
                | "charge.dispute.funds_withdrawn" | "charge.dispute.funds_reinstated" if obj.get("payment_intent"):
            return DisputeChanged(dispute_id=obj["id"], payment_intent=str(_id(obj["payment_intent"])), amount_minor=int(obj["amount"]), status=str(obj["status"]))
    return NothingToDo()


def _id(value: Any) -> str | None:
    """An id, or the id of an expanded object."""
    if isinstance(value, dict):
        return str(value["id"])
    return None if value is None else str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _tenant(metadata: dict[str, Any]) -> str | None:
    tenant = metadata.get(TENANT) or metadata.get("tenant_id")
    if tenant is not None and not (isinstance(tenant, str) and TENANT_ID.fullmatch(tenant)):
        raise ValueError(f"metadata names {tenant!r}, which is not a tenant id")
    return tenant


def _credits(metadata: dict[str, Any]) -> int | None:
    credits = metadata.get(CREDITS) or metadata.get("credits")
    if credits is None:
        return None
    if int(credits) <= 0:
        raise ValueError("credits must be positive")
    return int(credits)


def _attempt(metadata: dict[str, Any]) -> UUID | None:
    return UUID(metadata[ATTEMPT]) if metadata.get(ATTEMPT) else None
