"""`/v1/quotes` and `/v1/account`: prices and balances, answered by the ledger over gRPC."""

from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts import Tier
from services.common.problems import Problem
from services.common.protos import load
from services.ingest.deps import Settings, Tenant

pb, rpc = load("genline.ledger.v1")
router = APIRouter(prefix="/v1", tags=["account"])


def ledger_stub(request: Request):
    return request.app.state.ledger_stub


Ledger = Annotated[object, Depends(ledger_stub)]


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field("generic", max_length=64)
    tier: Tier = "stable"
    images: int = Field(1, ge=1, le=16)
    use_retry_tokens: bool = False


async def call_ledger(method, message, timeout_s: float):
    try:
        return await method(message, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Problem(422, "invalid-quote", exc.details()) from None
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise Problem(503, "ledger-unavailable", "the ledger does not answer; try again shortly",
                      {"Retry-After": "2"}) from None


@router.post("/quotes")
async def quote(body: QuoteRequest, tenant: Tenant, ledger: Ledger, settings: Settings):
    """What a job would cost now, and whether the balance covers it. Nothing is held."""
    answer = await call_ledger(ledger.Quote, pb.QuoteRequest(tenant_id=tenant, **body.model_dump()),
                               settings.ledger_grpc_timeout_s)
    return {"template": body.template, "tier": body.tier, "images": body.images, "credits": answer.credits,
            "unit_price": answer.unit_price, "price_book_version": answer.pricebook_version,
            "available": answer.available, "affordable": answer.affordable,
            "retry_tokens_applied": answer.retry_tokens_applied}


@router.get("/account")
async def account(tenant: Tenant, ledger: Ledger, settings: Settings):
    balance = await call_ledger(ledger.GetBalance, pb.GetBalanceRequest(tenant_id=tenant),
                                settings.ledger_grpc_timeout_s)
    if balance is None:
        return {"tenant_id": tenant, "available": 0, "posted": 0, "pending": 0, "retry_tokens": 0, "grants": []}
    return {
        "tenant_id": tenant, "available": balance.available, "posted": balance.posted, "pending": balance.pending,
        "retry_tokens": balance.retry_tokens, "report_policy": balance.report_policy,
        "grants": [{"id": g.id, "source": g.source, "amount": g.amount, "remaining": g.remaining,
                    "expires_at": g.expires_at or None} for g in balance.grants],
    }
