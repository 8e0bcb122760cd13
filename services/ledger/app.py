"""The ledger service's wiring: its consumers, its HTTP app (admin, payment webhooks, the
internal billing API) and, through `LedgerApp`, its gRPC server and sweepers."""

from typing import Any

from fastapi import FastAPI

from services.common import api, telemetry
from services.common.internal_calls import verifier_of
from services.common.runtime import ServiceRuntime
from services.ledger import handlers, routes
from services.ledger.routes import audit, billing, evaluations, tenant_audit
from services.ledger.service import LedgerApp, grant
from services.ledger.settings import LedgerSettings

# LedgerApp and grant are also reached through here by the stack launcher, seeding and benchmarks.
__all__ = ["LedgerApp", "build", "grant", "http_app"]


DESCRIPTION = """The ledger's HTTP face: the admin API (internal; off without operator tokens,
`GENLINE_ADMIN_TOKENS`, each with its scopes)
and the payment webhook (off without `GENLINE_PAYMENT_WEBHOOK_SECRET`). Balances and quotes
are served over gRPC. Every error is an RFC 9457 problem with the request's id."""
TAGS = [
    {"name": "admin", "description": "Grants, report policies, the reconciliation of payments and the audit trail"
     " (internal)."},
    {"name": "webhooks", "description": "Signed payment events, each granting its credits once."},
]


def build(settings: LedgerSettings) -> tuple[ServiceRuntime, FastAPI]:
    ledger = LedgerApp(settings)
    runtime = ledger.runtime
    runtime.consumer.on_batch(handlers.CONSUMES.handled, ledger.ledger.apply_events)
    runtime.consume(handlers.CONSUMES)
    ledger.serve_in_background()
    if ledger.payments and settings.stripe_api_key:
        ledger.payments.serve_in_background()
    app = http_app(ledger, runtime.lifespan)
    app.router.routes.extend(telemetry.ops_routes(runtime.readiness_checks, runtime.reported_checks, about=runtime.about))
    return runtime, app


def http_app(ledger: LedgerApp, lifespan: Any = None) -> FastAPI:
    """The ledger's HTTP API over `ledger`: admin, payment webhooks, the internal billing API."""
    app = api.create_app("ledger", api.Described(title="Genline ledger", description=DESCRIPTION, tags=TAGS), lifespan=lifespan)
    app.state.runtime, app.state.settings = ledger.runtime, ledger.settings
    app.state.grant, app.state.ledger = ledger.grant, ledger
    app.include_router(routes.router)
    app.include_router(audit.router)
    app.router.routes.extend(tenant_audit.routes(verifier_of(ledger.settings)))
    if ledger.payments:
        app.router.routes.extend(billing.routes(ledger.payments, verifier_of(ledger.settings)))
    app.router.routes.extend(evaluations.routes(ledger, verifier_of(ledger.settings)))
    return app
