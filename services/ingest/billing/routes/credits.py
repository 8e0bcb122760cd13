"""`/v1/billing`: buying credits. The ledger owns payments (it talks to the payment processor
and grants credits on its signed events); these routes check the caller's key and input and
ask the ledger's internal billing API, always for the caller's tenant only."""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import httpx
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.api import RequestModel
from services.common.audit import Action, record_action
from services.common.problems import Problem
from services.ingest.deps import AccountReader, Runtime, Scoped

router = APIRouter(prefix="/v1/billing", tags=["billing"], responses=problems.responses(503))
# The caller's tenant, when its key holds `billing:manage` (a dependency FastAPI reads from the
# annotation; to the type checker, the tenant's id it yields).
if TYPE_CHECKING:
    BillingManager: TypeAlias = str
else:
    BillingManager = Scoped("billing:manage")
RETURN_URL = r"^https?://[^\s]{1,1990}$"


class CheckoutRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"pack": "standard", "save_card": True}]})

    pack: str = Field(max_length=64, pattern=r"^[a-z0-9_-]+$", description="a credit pack of GET /v1/billing")
    save_card: bool = Field(False, description="keep the card for auto top-up")
    success_url: str | None = Field(None, pattern=RETURN_URL, description="where the payer returns after paying;"
                                    " `{CHECKOUT_SESSION_ID}` is replaced by the session's id. The console's account"
                                    " page when unset")
    cancel_url: str | None = Field(None, pattern=RETURN_URL, description="where the payer returns on cancelling")


class Checkout(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "session_id": "cs_test_a1b2", "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2", "pack": "standard",
        "credits": 5000, "amount_minor": 4500, "currency": "usd"}]})

    session_id: str
    url: str = Field(description="the processor's hosted payment page: send the payer there")
    pack: str
    credits: int = Field(description="granted once the processor says the payment succeeded")
    amount_minor: int
    currency: str


class AutoTopUpRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"below": 500, "pack": "starter", "max_per_month": 4, "enabled": True}]})

    below: int = Field(gt=0, le=10**12, description="buy when the available credits fall below this")
    pack: str = Field(max_length=64, pattern=r"^[a-z0-9_-]+$")
    max_per_month: int = Field(gt=0, le=100, description="at most this many top-ups a calendar month")
    enabled: bool = True


class CreditPack(BaseModel):
    name: str
    credits: int
    amount_minor: int
    currency: str


class AutoTopUp(BaseModel):
    below: int
    pack: str
    max_per_month: int
    enabled: bool
    paused_reason: str | None = Field(description="why it stopped: a decline the card networks forbid retrying or"
                                                   " that needs the cardholder, the retries spent, or a dispute")
    failures: int = Field(description="declined charges in a row")
    next_try_at: datetime | None = Field(None, description="when a declined charge is tried again (hours, then days"
                                                           " later, as the card networks allow); null when none is due")


class CheckoutRecord(BaseModel):
    session_id: str
    pack: str
    credits: int
    amount_minor: int
    currency: str
    state: Literal["open", "awaiting_payment", "paid", "expired", "failed"]
    created_at: datetime


class AutoTopUpAttempt(BaseModel):
    id: str
    pack: str
    credits: int
    amount_minor: int
    currency: str
    state: Literal["requested", "processing", "succeeded", "failed"]
    failure_code: str | None = Field(description="the decline's code where the processor gives one (insufficient_funds,"
                                                 " lost_card), else its error's (authentication_required)")
    failure_message: str | None
    created_at: datetime


class BillingOverview(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
                                                 "has_customer": True,
        "packs": [{"name": "starter", "credits": 1000, "amount_minor": 1000, "currency": "usd"}],
        "auto_topup": {"below": 500, "pack": "starter", "max_per_month": 4, "enabled": True, "paused_reason": None,
                       "failures": 1, "next_try_at": "2026-11-26T06:10:00Z"},
        "checkouts": [{"session_id": "cs_test_a1b2", "pack": "starter", "credits": 1000, "amount_minor": 1000,
                       "currency": "usd", "state": "paid", "created_at": "2026-11-26T02:50:00Z"}],
        "auto_topups": [{"id": "0b7c1e52-6f0a-4a8e-9c1d-2e3f4a5b6c7d", "pack": "starter", "credits": 1000,
                         "amount_minor": 1000, "currency": "usd", "state": "failed",
                         "failure_code": "insufficient_funds",
                         "failure_message": "Your card has insufficient funds.",
                         "created_at": "2026-11-26T03:10:00Z"}]}]})

    has_customer: bool = Field(description="the account has a customer at the payment processor, who can save a card")
    packs: list[CreditPack]
    auto_topup: AutoTopUp | None
    checkouts: list[CheckoutRecord] = Field(description="the latest checkouts, newest first")
    auto_topups: list[AutoTopUpAttempt] = Field(description="the latest auto top-ups, newest first")


async def ledger_http(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.ledger_http
    return client


LedgerHttp = Annotated[httpx.AsyncClient, Depends(ledger_http)]


@dataclass(frozen=True)
class TenantBilling:
    """The ledger's internal billing API, for one tenant."""

    http: httpx.AsyncClient
    tenant: str

    async def ask(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> Any:
        """The ledger's answer for `tenant`; its problems become ours, its absence a 503."""
        try:
            response = await self.http.request(method, f"/internal/v1/tenants/{self.tenant}{path}", json=body)
            answer: Any = response.json()
        except (httpx.HTTPError, ValueError):
            raise billing_unavailable() from None
        slug = str(answer.get("type", "")).rsplit("/", 1)[-1] if isinstance(answer, dict) else ""
        if response.status_code in (404, 405) and slug in ("", "not-found", "method-not-allowed"):  # no such route
            raise Problem(status=404, slug="billing-disabled", detail="payments are not configured on this deployment")
        if response.status_code >= 400 and response.status_code != 503 and slug:
            raise Problem(status=response.status_code, slug=slug, detail=answer.get("detail", ""))
        if response.status_code >= 400:
            raise billing_unavailable()
        return answer


def billing_unavailable() -> Problem:
    return Problem(status=503, slug="billing-unavailable", detail="payments cannot be reached right now; try again shortly",
                   headers={"Retry-After": "5"}, extra={"retry_after": 5})


@router.get("", response_model=BillingOverview, responses=problems.responses(404))
async def get_billing(tenant: AccountReader, http: LedgerHttp) -> Any:
    """The credit packs on sale, the auto top-up rule, and the latest checkouts and top-ups."""
    return await TenantBilling(http, tenant).ask("GET", "/billing")


@router.post("/checkout", status_code=201, response_model=Checkout, responses=problems.responses(404, 422))
async def create_checkout(body: CheckoutRequest, tenant: BillingManager, http: LedgerHttp,
                          request: Request, runtime: Runtime) -> Any:
    """Open a checkout for a credit pack; send the payer to `url`. Credits arrive once the
    processor says the payment succeeded (at once for a card, later for a bank debit), and
    never twice for one payment."""
    account_page = f"{str(request.base_url).rstrip('/')}/console/account"
    checkout = await TenantBilling(http, tenant).ask("POST", "/checkout", body={
        "pack": body.pack, "save_card": body.save_card,
        "success_url": body.success_url or f"{account_page}?checkout={{CHECKOUT_SESSION_ID}}",
        "cancel_url": body.cancel_url or f"{account_page}?checkout=canceled"})
    await on_record(runtime, Action(actor=f"tenant:{tenant}", name="billing.checkout", target=f"tenant:{tenant}", tenant_id=tenant, details={
        "pack": body.pack, "session_id": checkout.get("session_id"), "credits": checkout.get("credits")}))
    return checkout


async def on_record(runtime: Any, action: Action) -> None:
    """A top-up asked for, on the record as its caller's (the ledger records the payment itself)."""
    async with runtime.pool.connection() as conn, conn.transaction():
        await record_action(runtime, conn, action=action)
    runtime.relay.notify()


@router.put("/auto-topup", response_model=BillingOverview, responses=problems.responses(404, 422))
async def set_auto_topup(body: AutoTopUpRequest, tenant: BillingManager, http: LedgerHttp, runtime: Runtime) -> Any:
    """Buy `pack` with the saved card whenever a charge takes the balance below `below`, at
    most `max_per_month` times a month. A failed charge is reported as
    `billing.topup_failed`, saying when it is tried again: a decline that may be retried is
    charged again hours, then days later (8 tries in under two weeks, never more than the card
    networks allow in 30 days); one they forbid retrying (a lost or closed card, the processor's
    `do_not_try_again`) or that needs the cardholder (`authentication_required`) pauses the
    rule and that card is not charged again. A dispute pauses it too. Setting the rule again
    turns it back on."""
    billing = await TenantBilling(http, tenant).ask("PUT", "/auto-topup", body=body.model_dump())
    await on_record(runtime, Action(actor=f"tenant:{tenant}", name="billing.auto_topup", target=f"tenant:{tenant}", tenant_id=tenant,
                                    details=body.model_dump()))
    return billing
