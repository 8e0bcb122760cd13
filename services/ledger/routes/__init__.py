"""The ledger's HTTP API: admin top-ups and settings, reconciliation, and Stripe's payment
webhooks (`Stripe-Signature: t=…,v1=…`, checked by its library), each event applied once.

Its modules:
    audit.py          the operators' view of the audit trail (`GET /admin/v1/audit`);
                      services.ledger.audit keeps it
    billing.py        the ledger's internal billing API, for ingest, which serves the public
                      `/v1/billing` routes
    evaluations.py    the ledger's internal evaluation charges, for ingest's /v1/evaluations
    tenant_audit.py   the ledger's internal audit API
"""

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.admin import Operator, OperatorWith
from services.common.api import RequestModel, Timestamp
from services.common.audit import operator_actor
from services.common.db import Conn
from services.common.problems import Problem
from services.ledger.payments.gateway import InvalidNotice
from services.ledger.records import CreditGrant
from services.ledger.store.accounts import payments_and_grants

router = APIRouter()

# The operator a route needs, holding the scope it names (a dependency that FastAPI reads
# from the annotation; to the type checker, the operator it yields).
if TYPE_CHECKING:
    Granter: TypeAlias = Operator
    SettingsManager: TypeAlias = Operator
    BillingReader: TypeAlias = Operator
else:
    Granter, SettingsManager = OperatorWith("credits:grant"), OperatorWith("tenants:manage")
    BillingReader = OperatorWith("billing:read")


TENANT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class GrantRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"tenant_id": "acme", "credits": 500, "reason": "pilot", "expires_at": "2027-01-01T00:00:00Z"}]})

    tenant_id: str = Field(pattern=TENANT_ID)
    credits: int = Field(gt=0, le=10**12)
    reason: str = Field("admin grant", max_length=500)
    expires_at: Timestamp | None = None
    rollover_days: int | None = Field(None, gt=0, le=3650)


class GrantMade(BaseModel):
    grant_id: str
    tenant_id: str
    available: int = Field(description="the tenant's available credits after the grant")


class PolicyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"report_policy": "retry_token"}]})

    report_policy: Literal["refund", "retry_token"]


class PolicySet(BaseModel):
    tenant_id: str
    report_policy: Literal["refund", "retry_token"]


# Every admin operation answers 404 while the admin API is off (or on the public port), and
# 403 to an operator without its scope.
ADMIN_PROBLEMS = problems.responses(403, 404)


@router.post("/admin/v1/grants", status_code=201, tags=["admin"], response_model=GrantMade,
             responses=ADMIN_PROBLEMS)
async def admin_grant(body: GrantRequest, request: Request, operator: Granter) -> GrantMade:
    grant = CreditGrant(tenant_id=body.tenant_id, amount=body.credits, source="admin", reason=body.reason, expires_at=body.expires_at, rollover_days=body.rollover_days)
    granted = await request.app.state.grant(grant, operator_actor(operator.name))
    return GrantMade(grant_id=str(granted.grant_id), tenant_id=body.tenant_id, available=granted.available_after)


@router.put("/admin/v1/accounts/{tenant_id}/report-policy", tags=["admin"], response_model=PolicySet,
            responses=ADMIN_PROBLEMS)
async def set_report_policy(tenant_id: Annotated[str, Path(pattern=TENANT_ID)], body: PolicyRequest,
                            request: Request, operator: SettingsManager) -> PolicySet:
    if not await request.app.state.ledger.set_report_policy(tenant_id, body.report_policy,
                                                            actor=operator_actor(operator.name)):
        raise Problem(status=404, slug="account-not-found", detail=f"tenant {tenant_id!r} has no credit account")
    return PolicySet(tenant_id=tenant_id, report_policy=body.report_policy)


class ReconciliationLine(BaseModel):
    event_id: str | None
    tenant_id: str | None
    credits_paid: int | None
    amount_minor: int | None
    currency: str | None
    grant_id: str | None
    credits_granted: int | None
    credits_reclaimed: int | None = Field(None, description="taken back by refunds of this payment")


class Reconciliation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "payments": 1, "credits_paid": 800, "credits_granted": 800, "amount_minor_by_currency": {"usd": 4999},
        "problems": [], "lines": [{"event_id": "evt_1NbQ", "tenant_id": "acme", "credits_paid": 800,
                                   "amount_minor": 4999, "currency": "usd",
                                   "grant_id": "5b0f9c7e-8d1a-4e52-9a57-3f1c2b7d6e40", "credits_granted": 800}]}]})

    payments: int
    credits_paid: int
    credits_granted: int
    amount_minor_by_currency: dict[str, int]
    problems: list[dict[str, str]] = Field(description="each payment without its grant, or grant without payment")
    lines: list[ReconciliationLine]


@router.get("/admin/v1/reconciliation", tags=["admin"], response_model=Reconciliation, responses=ADMIN_PROBLEMS)
async def reconciliation(request: Request, _: BillingReader) -> dict[str, Any]:
    async with request.app.state.runtime.pool.connection() as conn:
        return await reconcile(conn)


async def reconcile(conn: Conn) -> dict[str, Any]:
    """Every payment should have made exactly one grant of the paid credits, and every
    payment grant should come from a payment; `lines` pairs each payment with its grant."""
    rows = await payments_and_grants(conn)
    problems: list[dict[str, str]] = []
    for r in rows:
        if r["event_id"] is None:
            problems.append({"grant_id": str(r["grant_id"]), "problem": "payment grant without a payment"})
        elif r["grant_id"] is None:
            problems.append({"event_id": r["event_id"], "problem": "payment without a grant"})
        elif r["granted"] != r["credits"]:
            problems.append({"event_id": r["event_id"], "problem": f"paid for {r['credits']} credits, granted {r['granted']}"})
    paid = [r for r in rows if r["event_id"]]
    return {
        "payments": len(paid),
        "credits_paid": sum(r["credits"] for r in paid),
        "credits_granted": sum(r["granted"] or 0 for r in rows),
        "amount_minor_by_currency": _sum_by(paid, "currency", value="amount_minor"),
        "problems": problems,
        "lines": [_line(r) for r in rows],
    }


def _line(row: dict[str, Any]) -> dict[str, Any]:
    """One payment against the grant it made (either side may be missing)."""
    return {"event_id": row["event_id"], "tenant_id": row["tenant_id"], "credits_paid": row["credits"],
            "amount_minor": row["amount_minor"], "currency": row["currency"],
            "grant_id": str(row["grant_id"]) if row["grant_id"] else None, "credits_granted": row["granted"],
            "credits_reclaimed": row["credits_reclaimed"]}


def _sum_by(rows: list[dict[str, Any]], key: str, *, value: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for r in rows:
        totals[r[key]] = totals.get(r[key], 0) + r[value]
    return totals


class WebhookReceipt(BaseModel):
    received: bool
    granted: int = Field(description="credits granted for this event (0 when it needs no action)")
    grant_id: str | None = None
    duplicate: bool = Field(False, description="the event was applied before; acknowledged, nothing changed")
    detail: str | None = None


PAYMENT_EVENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "a Stripe event, signed by Stripe (`Stripe-Signature`). Credits are granted on"
    " `checkout.session.completed` with `payment_status=paid` or `checkout.session.async_payment_succeeded`, once"
    " per payment, and on `payment_intent.succeeded` of an auto top-up; `charge.refunded` and `charge.dispute.*` take"
    " credits back; expired and failed checkouts and failed charges are recorded",
    "examples": [{"id": "evt_1NbQ", "object": "event", "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_test_a1", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
        "amount_total": 1000, "currency": "usd", "payment_intent": "pi_3Nb",
        "metadata": {"genline_tenant": "acme", "genline_credits": "1000"}}}}]}}}}}


@router.post("/v1/webhooks/payments", tags=["webhooks"], response_model=WebhookReceipt,
             responses=problems.responses(400, 404), openapi_extra=PAYMENT_EVENT_BODY)
async def payment_webhook(request: Request,
                          stripe_signature: Annotated[str | None, Header()] = None) -> WebhookReceipt:
    """Stripe's events, verified with its library before anything is read. An event seen
    before is acknowledged (200, `duplicate`) and changes nothing: Stripe retries any other
    answer for days."""
    payments = request.app.state.ledger.payments
    if payments is None:
        raise Problem(status=404, slug="webhooks-disabled", detail="payment webhooks are off: set GENLINE_PAYMENT_WEBHOOK_SECRET")
    try:
        notice = payments.gateway.read_notice(await request.body(), stripe_signature)
    except InvalidNotice as exc:
        raise Problem(status=400, slug=exc.reason, detail=str(exc)) from None
    applied = await payments.apply(notice)
    return WebhookReceipt(received=True, granted=applied.granted, grant_id=applied.grant_id,
                          duplicate=applied.duplicate, detail=applied.detail)
