"""The ledger service: prepaid credits, reserved on submission and charged on delivery."""

from datetime import UTC, datetime

from services.common import api, telemetry
from services.common.audit import operator_actor, record_action
from services.common.bus import retry_races
from services.common.contracts import SUBSCRIPTIONS, CreditsGranted
from services.common.internal_calls import verifier_of
from services.common.runtime import GRPC_DRAIN_S, ServiceRuntime
from services.common.supervision import every, stop_tasks, supervise
from services.ledger import alerts, audit, handlers, metrics, routes
from services.ledger.grpc import start_grpc_server
from services.ledger.payments import billing_api
from services.ledger.payments.service import Payments
from services.ledger.payments.stripe_gateway import StripeGateway
from services.ledger.pricebook import load_price_book
from services.ledger.settings import LedgerSettings


class LedgerApp:
    """The ledger's runtime and the operations that do not come from Kafka."""

    def __init__(self, settings: LedgerSettings, runtime: ServiceRuntime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or ServiceRuntime("ledger", settings, "services.ledger")
        self.price_book = load_price_book(settings.price_book_path)
        self.ledger = handlers.Ledger(settings, self.price_book)
        self.runtime.relay.observers.append(metrics.count_published)
        self.payments = payments_of(self, settings)

    async def grant(self, tenant_id: str, credits: int, source: str, reason: str, actor: str | None = None,
                    **terms) -> CreditsGranted:
        """Grant credits; an operator's grant (`actor`) is recorded in the audit trail with it."""
        async def once() -> CreditsGranted:
            async with self.runtime.pool.connection() as conn, conn.transaction():
                granted = await self.grant_in(conn, tenant_id, credits, source, reason, **terms)
                if actor:
                    await self.audit(conn, actor, "credits.grant", f"tenant:{tenant_id}", tenant_id,
                                     credits=credits, reason=reason, grant_id=str(granted.grant_id),
                                     expires_at=terms.get("expires_at") and terms["expires_at"].isoformat())
                return granted

        granted = await retry_races(once)
        self.runtime.relay.notify()
        return granted

    async def grant_in(self, conn, tenant_id: str, credits: int, source: str, reason: str, *, expires_at=None,
                       rollover_days=None, payment_id=None) -> CreditsGranted:
        """Grant inside the caller's transaction; the caller notifies the relay after commit."""
        book = await self.ledger.open_book(conn, [tenant_id])
        granted = book.grant(tenant_id, credits, source, reason, datetime.now(UTC), expires_at, rollover_days,
                             payment_id)
        paid = book.pay_debt(tenant_id, payment_id)  # a tenant that owes pays its debt first
        await handlers.write_book(conn, book)
        for event in (granted, paid):
            if event:
                await self.runtime.emit(conn, event)
        return granted

    async def audit(self, conn, actor: str, action: str, target: str, tenant_id: str | None, **details) -> None:
        """Record an action of the ledger's own: published like any service's, and kept in the
        trail at once (the ledger does not consume its own topic)."""
        await audit.keep(conn, [await record_action(self.runtime, conn, actor, action, target, tenant_id, **details)])

    async def set_report_policy(self, tenant_id: str, policy: str, actor: str) -> bool:
        async with self.runtime.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(
                "SELECT report_policy FROM accounts WHERE tenant_id = %s FOR UPDATE", [tenant_id])).fetchone()
            if row is None:
                return False
            await conn.execute("UPDATE accounts SET report_policy = %s WHERE tenant_id = %s", [policy, tenant_id])
            await self.audit(conn, actor, "report_policy.set", f"tenant:{tenant_id}", tenant_id,
                             report_policy=policy, previous=row["report_policy"])
        self.runtime.relay.notify()
        return True

    async def sweep_once(self, now: datetime | None = None) -> int:
        async def once() -> list:
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

    async def topup_failed(self, tenant_id: str, payment_id: str, reason: str, amount_minor: int | None = None,
                           currency: str | None = None) -> bool:
        """Tell the tenant an automatic top-up failed, once per payment; False when told before."""
        details = {"payment_id": payment_id, "reason": reason, "amount_minor": amount_minor, "currency": currency}
        async with self.runtime.pool.connection() as conn, conn.transaction():
            event = await alerts.raise_once(conn, tenant_id, "billing.topup_failed", payment_id, details)
            if event is not None:
                await self.runtime.emit(conn, event)
        self.runtime.relay.notify()
        return event is not None

    def serve_in_background(self) -> None:
        """gRPC and the sweeper start and stop with the service."""
        state = {}

        async def start() -> None:
            state["grpc"] = await start_grpc_server(self.runtime.pool, self.price_book, self.settings.grpc_host,
                                                    self.settings.grpc_port, verifier_of(self.settings))
            state["sweeper"] = supervise("ledger-sweep", lambda: every(self.settings.sweep_interval_s, self.sweep_once,
                                                                      "ledger-sweep"))
            state["alerts"] = supervise("ledger-alerts", lambda: every(self.settings.alert_interval_s, self.alert_once,
                                                                      "ledger-alerts"))

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
    gateway = StripeGateway(key, settings.payment_webhook_secret.get_secret_value(),
                            settings.payment_webhook_tolerance_s, settings.stripe_api_base)
    return Payments(ledger, gateway, settings)


DESCRIPTION = """The ledger's HTTP face: the admin API (internal; off without operator tokens,
`GENLINE_ADMIN_TOKENS`, each with its scopes)
and the payment webhook (off without `GENLINE_PAYMENT_WEBHOOK_SECRET`). Balances and quotes
are served over gRPC. Every error is an RFC 9457 problem with the request's id."""
TAGS = [
    {"name": "admin", "description": "Grants, report policies, the reconciliation of payments and the audit trail"
     " (internal)."},
    {"name": "webhooks", "description": "Signed payment events, each granting its credits once."},
]


def build(settings: LedgerSettings):
    ledger = LedgerApp(settings)
    runtime = ledger.runtime
    runtime.consumer.on_batch(handlers.CONSUMED, ledger.ledger.apply_events)
    runtime.consume(SUBSCRIPTIONS["ledger"])
    ledger.serve_in_background()
    if ledger.payments and settings.stripe_api_key:
        ledger.payments.serve_in_background()
    app = http_app(ledger, runtime.lifespan)
    app.router.routes.extend(telemetry.ops_routes(runtime.readiness_checks, runtime.reported_checks))
    return runtime, app


def http_app(ledger: LedgerApp, lifespan=None):
    """The ledger's HTTP API over `ledger`: admin, payment webhooks, the internal billing API."""
    app = api.create_app("ledger", title="Genline ledger", description=DESCRIPTION, tags=TAGS, lifespan=lifespan)
    app.state.runtime, app.state.settings = ledger.runtime, ledger.settings
    app.state.grant, app.state.ledger = ledger.grant, ledger
    app.include_router(routes.router)
    app.include_router(audit.router)
    if ledger.payments:
        app.router.routes.extend(billing_api.routes(ledger.payments, verifier_of(ledger.settings)))
    return app


async def grant(settings: LedgerSettings, tenant_id: str, amount: int, reason: str, **terms) -> int:
    """Grant credits through the ledger's own code and outbox (used by seeding and the CLI)."""
    ledger = LedgerApp(settings)
    await ledger.runtime.start()
    try:
        granted = await ledger.grant(tenant_id, amount, "admin", reason, operator_actor("cli"), **terms)
        await ledger.runtime.relay.relay_batch()
    finally:
        await ledger.runtime.stop()
    return granted.available_after
