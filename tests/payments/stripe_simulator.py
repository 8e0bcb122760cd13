"""A stateful simulator of the part of Stripe's API the ledger uses, on loopback, for the
official `stripe` library to talk to (`StripeClient(..., base_addresses={"api": url})`).

It keeps customers, saved cards, Checkout Sessions, PaymentIntents, charges, refunds and
disputes; answers in the shapes of Stripe's API reference (README.md beside this file names
each object's source); honours `Idempotency-Key`; and sends every event it makes to a webhook
URL signed as Stripe signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">`),
written out here from Stripe's documentation rather than taken from the library under test.

Besides Stripe's own routes it has a hosted checkout page (`/pay/{session}`) that a browser
can pay on, and controls under `/_sim/` that play the cardholder and the bank: pay a session
(by card, or by a method that settles later), expire it, refund, open and close disputes,
change a customer's saved card.
"""

import asyncio
import hashlib
import hmac
import html
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from genline_stack.ports import free_port

API_VERSION = "2025-10-29.clover"
# Stripe's test cards (docs.stripe.com/testing): each behaves off-session as its name says.
SUCCEEDS, DECLINED, AUTHENTICATION_REQUIRED = "pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"
INSUFFICIENT_FUNDS, LOST_CARD = "pm_card_chargeDeclinedInsufficientFunds", "pm_card_chargeDeclinedLostCard"
# How each card that fails off-session fails: the error's code, decline_code, advice_code and
# the card network's own decline code (Visa's 51 insufficient funds, 41 lost card).
DECLINES = {
    DECLINED: ("card_declined", "generic_decline", None, None, "Your card was declined."),
    AUTHENTICATION_REQUIRED: ("authentication_required", "authentication_required", None, None,
                              "This payment requires authentication."),
    INSUFFICIENT_FUNDS: ("card_declined", "insufficient_funds", "try_again_later", "51",
                         "Your card has insufficient funds."),
    LOST_CARD: ("card_declined", "lost_card", "do_not_try_again", "41", "Your card was declined."),
}


def decode_form(body: bytes) -> dict:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested objects and lists."""
    root: dict = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def sign(secret: str, timestamp: int, payload: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class StripeSimulator:
    webhook_secret: str
    webhook_url: str | None = None
    auto_deliver: bool = True
    base_url: str = ""
    customers: dict = field(default_factory=dict)
    cards: dict = field(default_factory=dict)  # customer id -> saved payment method ids
    sessions: dict = field(default_factory=dict)
    intents: dict = field(default_factory=dict)
    charges: dict = field(default_factory=dict)
    disputes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    deliveries: list = field(default_factory=list)  # (event id, status) of every webhook sent
    idempotent: dict = field(default_factory=dict)
    intent_creations: list = field(default_factory=list)  # the idempotency key of each create
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_sim{next(self.counter):06d}{secrets.token_hex(4)}"

    # ---- the app --------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/customers", self.create_customer, methods=["POST"]),
            Route("/v1/customers/{customer}/payment_methods", self.list_cards, methods=["GET"]),
            Route("/v1/checkout/sessions", self.create_session, methods=["POST"]),
            Route("/v1/checkout/sessions/{session}", self.get_session, methods=["GET"]),
            Route("/v1/payment_intents", self.create_intent, methods=["POST"]),
            Route("/v1/payment_intents/{intent}", self.get_intent, methods=["GET"]),
            Route("/v1/refunds", self.create_refund, methods=["POST"]),
            Route("/pay/{session}", self.hosted_page, methods=["GET"]),
            Route("/pay/{session}", self.hosted_pay, methods=["POST"]),
        ])

    async def _authorized_params(self, request: Request) -> dict | Response:
        if not request.headers.get("authorization", "").startswith("Bearer sk_"):
            return self.error(401, "invalid_request_error", None, "You did not provide an API key.")
        return decode_form(await request.body())

    async def _idempotent(self, request: Request, make) -> Response:
        params = await self._authorized_params(request)
        if isinstance(params, Response):
            return params
        key = request.headers.get("idempotency-key")
        if key and key in self.idempotent:
            status, body = self.idempotent[key]
            return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
        status, body = await make(params, key)
        if key:
            self.idempotent[key] = (status, body)
        return JSONResponse(body, status)

    @staticmethod
    def error(status: int, kind: str, code: str | None, message: str, **more) -> JSONResponse:
        return JSONResponse({"error": {"type": kind, "code": code, "message": message,
                                       "doc_url": f"https://docs.stripe.com/error-codes/{code}" if code else None,
                                       **more}}, status)

    # ---- customers and cards ----------------------------------------------------------------

    async def create_customer(self, request: Request) -> Response:
        async def make(params, _key):
            customer = {"id": self.new_id("cus"), "object": "customer", "created": int(time.time()),
                        "description": params.get("description"), "email": None, "livemode": False,
                        "metadata": params.get("metadata", {}), "invoice_settings": {"default_payment_method": None}}
            self.customers[customer["id"]] = customer
            self.cards[customer["id"]] = []
            return 200, customer
        return await self._idempotent(request, make)

    def save_card(self, customer: str, payment_method: str = SUCCEEDS) -> None:
        """The cardholder's card, kept for off-session charges (or changed to another test card)."""
        self.cards[customer] = [payment_method]

    async def list_cards(self, request: Request) -> Response:
        customer = request.path_params["customer"]
        if customer not in self.customers:
            return self.error(404, "invalid_request_error", "resource_missing", f"No such customer: '{customer}'")
        data = [{"id": pm, "object": "payment_method", "type": "card", "customer": customer,
                 "card": {"brand": "visa", "last4": "4242" if pm == SUCCEEDS else "0341"}} for pm in self.cards[customer]]
        return JSONResponse({"object": "list", "url": f"/v1/customers/{customer}/payment_methods", "has_more": False,
                             "data": data})

    # ---- Checkout Sessions -------------------------------------------------------------------

    async def create_session(self, request: Request) -> Response:
        async def make(params, _key):
            if params.get("mode") != "payment" or not params.get("success_url"):
                return 400, {"error": {"type": "invalid_request_error", "message": "mode=payment and success_url"}}
            items = params.get("line_items", [])
            total = sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items)
            session_id = self.new_id("cs_test")
            intent_data = params.get("payment_intent_data", {})
            session = {
                "id": session_id, "object": "checkout.session", "mode": "payment", "status": "open",
                "payment_status": "unpaid", "amount_total": total, "amount_subtotal": total,
                "currency": items[0]["price_data"]["currency"] if items else "usd",
                "customer": params.get("customer"), "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}), "payment_intent": None,
                "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
                "url": f"{self.base_url}/pay/{session_id}", "created": int(time.time()),
                "expires_at": int(time.time()) + 24 * 3600, "livemode": False,
                "_intent_data": intent_data,
            }
            self.sessions[session_id] = session
            return 200, self.public(session)
        return await self._idempotent(request, make)

    @staticmethod
    def public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    async def get_session(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session"])
        if session is None:
            return self.error(404, "invalid_request_error", "resource_missing", "No such checkout.session")
        return JSONResponse(self.public(session))

    async def hosted_page(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session"])
        if session is None or session["status"] != "open":
            return HTMLResponse("<h1>This checkout is no longer open</h1>", 404)
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        return HTMLResponse(f"""<!doctype html><html><head><title>Pay - Stripe simulator</title></head>
<body style="font-family:sans-serif;max-width:30em;margin:3em auto">
<h1>Stripe simulator checkout</h1><p>Pay <strong id="amount">{html.escape(amount)}</strong>
for {html.escape(session['metadata'].get('genline_credits', '?'))} credits.</p>
<form method="post"><label>Card number <input name="card" value="4242 4242 4242 4242"></label>
<button type="submit">Pay {html.escape(amount)}</button></form></body></html>""")

    async def hosted_pay(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session"])
        if session is None or session["status"] != "open":
            return HTMLResponse("<h1>This checkout is no longer open</h1>", 404)
        await self.pay_session(session["id"])
        target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        return RedirectResponse(target, 303)

    async def pay_session(self, session_id: str, settles_later: bool = False) -> dict:
        """The cardholder pays: by card (paid at once), or by a method that settles later
        (`payment_status=unpaid` until `settle_session`)."""
        session = self.sessions[session_id]
        intent = self._intent(session["amount_total"], session["currency"], session["customer"], SUCCEEDS,
                              session["_intent_data"].get("metadata", {}))
        session.update(status="complete", payment_intent=intent["id"])
        if session["_intent_data"].get("setup_future_usage") == "off_session" and session["customer"]:
            self.save_card(session["customer"])
        if settles_later:
            intent["status"] = "processing"
            await self.emit("checkout.session.completed", self.public(session))
            return session
        await self._succeed(intent)
        session["payment_status"] = "paid"
        await self.emit("checkout.session.completed", self.public(session))
        return session

    async def settle_session(self, session_id: str, succeeded: bool) -> dict:
        session = self.sessions[session_id]
        intent = self.intents[session["payment_intent"]]
        if succeeded:
            await self._succeed(intent)
            session["payment_status"] = "paid"
            await self.emit("checkout.session.async_payment_succeeded", self.public(session))
        else:
            intent.update(status="requires_payment_method", last_payment_error={
                "type": "card_error", "code": "payment_method_customer_decline", "message": "The payment failed."})
            await self.emit("payment_intent.payment_failed", self.public(intent))
            await self.emit("checkout.session.async_payment_failed", self.public(session))
        return session

    async def expire_session(self, session_id: str) -> dict:
        session = self.sessions[session_id]
        session["status"] = "expired"
        await self.emit("checkout.session.expired", self.public(session))
        return session

    # ---- PaymentIntents and charges ----------------------------------------------------------

    def _intent(self, amount: int, currency: str, customer: str | None, payment_method: str | None,
                metadata: dict) -> dict:
        intent = {"id": self.new_id("pi"), "object": "payment_intent", "amount": amount, "amount_received": 0,
                  "currency": currency, "customer": customer, "payment_method": payment_method,
                  "status": "requires_confirmation", "metadata": metadata, "latest_charge": None,
                  "last_payment_error": None, "created": int(time.time()), "livemode": False}
        self.intents[intent["id"]] = intent
        return intent

    async def _succeed(self, intent: dict) -> None:
        charge = {"id": self.new_id("ch"), "object": "charge", "amount": intent["amount"],
                  "amount_captured": intent["amount"], "amount_refunded": 0, "currency": intent["currency"],
                  "customer": intent["customer"], "payment_intent": intent["id"], "paid": True, "refunded": False,
                  "disputed": False, "status": "succeeded", "metadata": intent["metadata"], "created": int(time.time()),
                  "livemode": False, "refunds": {"object": "list", "data": [], "has_more": False}}
        self.charges[charge["id"]] = charge
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
        await self.emit("charge.succeeded", dict(charge))
        await self.emit("payment_intent.succeeded", self.public(intent))

    async def create_intent(self, request: Request) -> Response:
        async def make(params, key):
            self.intent_creations.append(key)
            customer, method = params.get("customer"), params.get("payment_method")
            if customer not in self.customers or method not in self.cards.get(customer, []):
                return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                       "message": f"No such PaymentMethod: '{method}'"}}
            intent = self._intent(int(params["amount"]), params["currency"], customer, method,
                                  params.get("metadata", {}))
            if method == SUCCEEDS:
                await self._succeed(intent)
                return 200, self.public(intent)
            code, decline, advice, network, message = DECLINES.get(method, DECLINES[DECLINED])
            error = {"type": "card_error", "code": code, "decline_code": decline, "advice_code": advice,
                     "network_decline_code": network, "message": message,
                     "payment_method": {"id": method, "object": "payment_method", "type": "card"}}
            intent.update(status="requires_payment_method", last_payment_error=error)
            await self.emit("payment_intent.payment_failed", self.public(intent))
            return 402, {"error": {**error, "payment_intent": self.public(intent),
                                   "doc_url": f"https://docs.stripe.com/error-codes/{code}"}}
        return await self._idempotent(request, make)

    async def get_intent(self, request: Request) -> Response:
        intent = self.intents.get(request.path_params["intent"])
        if intent is None:
            return self.error(404, "invalid_request_error", "resource_missing", "No such payment_intent")
        return JSONResponse(self.public(intent))

    # ---- refunds and disputes ----------------------------------------------------------------

    async def create_refund(self, request: Request) -> Response:
        async def make(params, _key):
            intent = self.intents.get(params.get("payment_intent", ""))
            if intent is None or intent["latest_charge"] is None:
                return 400, {"error": {"type": "invalid_request_error", "message": "no charge to refund"}}
            refund = await self.refund(intent["id"], int(params.get("amount", intent["amount"])))
            return 200, refund
        return await self._idempotent(request, make)

    async def refund(self, payment_intent: str, amount: int) -> dict:
        charge = self.charges[self.intents[payment_intent]["latest_charge"]]
        amount = min(amount, charge["amount"] - charge["amount_refunded"])
        refund = {"id": self.new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "currency": charge["currency"], "payment_intent": payment_intent, "status": "succeeded",
                  "created": int(time.time())}
        charge["amount_refunded"] += amount  # cumulative, as charge.refunded reports it
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, refund)
        await self.emit("refund.created", refund)
        await self.emit("charge.refunded", json.loads(json.dumps(charge)))
        return refund

    async def open_dispute(self, payment_intent: str, amount: int | None = None, reason: str = "fraudulent") -> dict:
        charge = self.charges[self.intents[payment_intent]["latest_charge"]]
        charge["disputed"] = True
        dispute = {"id": self.new_id("dp"), "object": "dispute", "amount": amount or charge["amount"],
                   "charge": charge["id"], "currency": charge["currency"], "payment_intent": payment_intent,
                   "reason": reason, "status": "needs_response", "is_charge_refundable": False,
                   "created": int(time.time()), "livemode": False, "metadata": {}}
        self.disputes[dispute["id"]] = dispute
        await self.emit("charge.dispute.created", dict(dispute))
        await self.emit("charge.dispute.funds_withdrawn", dict(dispute))
        return dispute

    async def close_dispute(self, dispute_id: str, status: str) -> dict:
        dispute = self.disputes[dispute_id]
        dispute["status"] = status
        if status == "won":
            await self.emit("charge.dispute.funds_reinstated", dict(dispute))
        await self.emit("charge.dispute.closed", dict(dispute))
        return dispute

    # ---- events and webhooks -----------------------------------------------------------------

    async def emit(self, kind: str, obj: dict) -> dict:
        event = {"id": self.new_id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                 "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "type": kind}
        self.events.append(event)
        if self.auto_deliver and self.webhook_url:
            await self.deliver(event)
        return event

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    async def deliver(self, event: dict, attempts: int = 5) -> int:
        """Send `event` to the webhook, as Stripe does: freshly signed, again while the answer
        is not a 2xx (a few times here; Stripe keeps at it for days)."""
        payload = json.dumps(event).encode()
        status = 0
        async with httpx.AsyncClient(timeout=30) as client:
            for attempt in range(attempts):
                headers = {"Content-Type": "application/json; charset=utf-8",
                           "Stripe-Signature": sign(self.webhook_secret, int(time.time()), payload)}
                try:
                    status = (await client.post(self.webhook_url, content=payload, headers=headers)).status_code
                except httpx.HTTPError:
                    status = 0
                self.deliveries.append((event["id"], status))
                if 200 <= status < 300:
                    return status
                await asyncio.sleep(0.2 * (attempt + 1))
        return status


@contextmanager
def simulator_in_thread(webhook_secret: str, webhook_url: str | None = None) -> Iterator[StripeSimulator]:
    """The simulator served on a loopback port by a thread of its own (for services that run
    as processes, and for sync tests such as the browser's)."""
    port = free_port()
    simulator = StripeSimulator(webhook_secret, webhook_url, base_url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(simulator.app(), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield simulator
    finally:
        server.should_exit = True
        thread.join(10)
