"""`/v1/quotes` and `/v1/account`: prices and balances, answered by the ledger over gRPC."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.common import problems
from services.common.api import RequestModel
from services.common.contracts import IdentityMode, Tier
from services.common.problems import Problem
from services.ingest import subjects
from services.ingest.deps import AccountReader, Runtime, Settings
from services.ingest.jobs import CLIP_FROM_IMAGE_EXAMPLE, MAX_IMAGES, VideoRequest
from services.ingest.ledger_calls import Ledger, call_ledger, pb

# Both answer from the ledger, which may be briefly away (503).
router = APIRouter(prefix="/v1", tags=["account"], responses=problems.responses(503))


class QuoteRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"template": "headshot", "tier": "fast", "images": 4},
        {key: CLIP_FROM_IMAGE_EXAMPLE[key] for key in ("template", "images", "video")}]})

    template: str = Field("generic", max_length=64)
    tier: Tier = "stable"
    images: int = Field(1, ge=1, le=MAX_IMAGES, description="images, or a video job's clips")
    use_retry_tokens: bool = False
    video: VideoRequest | None = Field(None, description="a video job's clips (as POST /v1/jobs takes them): priced"
                                                         " by the second at their resolution")
    subject: UUID | None = Field(None, strict=False, description="a subject of yours the job would be of: its"
                                                                 " training line is quoted too")
    identity: IdentityMode = Field("auto", description="how the subject's identity would be carried; `reference`"
                                                       " trains nothing")


class Quote(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "template": "headshot", "tier": "fast", "images": 4, "credits": 64, "unit_price": 16,
        "price_book_version": "2026-11-01", "available": 1000, "affordable": True, "retry_tokens_applied": 0}]})

    template: str
    tier: Tier
    images: int
    credits: int = Field(description="what the job would cost now")
    unit_price: int = Field(description="credits per delivered image (a clip: at the seconds asked)")
    second_price: int | None = Field(None, description="a video job's credits per delivered second")
    clip_seconds: int | None = Field(None, description="the seconds one clip is priced at: duration_s rounded up;"
                                                       " a shorter clip delivered costs less")
    price_book_version: str
    available: int = Field(description="credits available now")
    affordable: bool = Field(description="the balance covers the images and the training line, and the account"
                                         " owes nothing")
    owed: int = Field(0, description="credits the account owes; no job is accepted until they are paid")
    retry_tokens_applied: int
    training_credits: int = Field(0, description="a job of a subject: held besides `credits` to train its identity,"
                                                 " charged only if the job trains it (once per subject and photo"
                                                 " set); 0 when its identity is trained already or by reference")


class Grant(BaseModel):
    id: str
    source: str
    amount: int
    remaining: int
    expires_at: str | None = Field(description="RFC 3339; null when the grant never expires")


class Account(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant_id": "acme", "available": 940, "posted": 1000, "pending": 60, "owed": 0, "retry_tokens": 1,
        "report_policy": "refund", "grants": [{"id": "5b0f9c7e-8d1a-4e52-9a57-3f1c2b7d6e40", "source": "payment",
                                               "amount": 1000, "remaining": 1000, "expires_at": None}]}]})

    tenant_id: str
    available: int
    posted: int
    pending: int = Field(description="credits held for jobs in progress")
    owed: int = Field(0, description="credits owed after a refund or a lost dispute took back credits already"
                                     " spent: while above 0 new jobs are refused (402 `account-in-debt`); credits"
                                     " bought (POST /v1/billing/checkout) pay it first")
    retry_tokens: int = Field(description="free images earned by reported images")
    report_policy: str | None = Field(None, description="what a reported image earns: refund or retry_token")
    grants: list[Grant]


@router.post("/quotes", response_model=Quote, responses=problems.responses(422))
async def quote(body: QuoteRequest, tenant: AccountReader, ledger: Ledger, settings: Settings,
                runtime: Runtime) -> dict[str, Any]:
    """What a job would cost now, and whether the balance covers it. Nothing is held. A video
    job (`video`) is quoted at the seconds asked; it is charged for the seconds delivered. A
    job of a subject (`subject`) shows its training line (`training_credits`), held with the
    job and charged only if the job trains the subject's identity."""
    clips = {"video_duration_s": body.video.duration_s, "video_resolution": body.video.resolution} if body.video else {}
    subject = await quoted_subject(body, tenant, runtime=runtime)
    answer = await call_ledger(ledger.Quote, pb.QuoteRequest(
        tenant_id=tenant, **body.model_dump(exclude={"video", "subject", "identity"}), **clips, **subject),
        timeout_s=settings.ledger_grpc_timeout_s)
    return {"template": body.template, "tier": body.tier, "images": body.images, "credits": answer.credits,
            "unit_price": answer.unit_price, "second_price": answer.second_price or None,
            "clip_seconds": answer.clip_seconds or None, "price_book_version": answer.pricebook_version,
            "available": answer.available, "affordable": answer.affordable,
            "owed": answer.owed, "retry_tokens_applied": answer.retry_tokens_applied,
            "training_credits": answer.training_credits}


async def quoted_subject(body: QuoteRequest, tenant: str, *, runtime: Runtime) -> dict[str, str]:
    """The subject's fields of the ledger's quote: its id, photo set and identity mode."""
    if body.subject is None:
        return {}
    async with runtime.pool.connection() as conn:
        row = await subjects.read_subject(conn, body.subject, tenant_id=tenant)
    if row is None or row["state"] == "erased" or not row["photo_set_sha256"]:
        raise Problem(status=422, slug="unknown-subject", detail=f"subject: you have no subject {body.subject} with accepted photos",
                      extra={"field": "subject"})
    return {"subject_id": str(body.subject), "photo_set_sha256": row["photo_set_sha256"], "identity": body.identity}


@router.get("/account", response_model=Account)
async def account(tenant: AccountReader, ledger: Ledger, settings: Settings) -> dict[str, Any]:
    balance = await call_ledger(ledger.GetBalance, pb.GetBalanceRequest(tenant_id=tenant),
                                timeout_s=settings.ledger_grpc_timeout_s)
    if balance is None:
        return {"tenant_id": tenant, "available": 0, "posted": 0, "pending": 0, "owed": 0, "retry_tokens": 0,
                "grants": []}
    return {
        "tenant_id": tenant, "available": balance.available, "posted": balance.posted, "pending": balance.pending,
        "owed": balance.owed,
        "retry_tokens": balance.retry_tokens, "report_policy": balance.report_policy,
        "grants": [{"id": g.id, "source": g.source, "amount": g.amount, "remaining": g.remaining,
                    "expires_at": g.expires_at or None} for g in balance.grants],
    }
