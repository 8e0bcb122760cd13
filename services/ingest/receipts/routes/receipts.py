"""Signed job receipts: `GET /v1/jobs/{id}/receipt`, the tenant's chain at `GET /v1/receipts`,
and the public keys that verify them at `GET /.well-known/genline-keys.json`."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.common import problems
from services.common.contracts import FINAL_STATES
from services.common.problems import Problem
from services.ingest.deps import ReceiptsReader, Runtime
from services.ingest.jobs import JOB_ID, job_state, parse_job_id, was_erased
from services.ingest.receipts import issuing
from services.ingest.receipts.document import FORMAT, SignedReceipt, canonical

router = APIRouter(tags=["receipts"])


def signed_json(content: dict[str, Any]) -> Response:
    """The receipts as they were signed, in their RFC 8785 canonical bytes: the models below
    document the shape, but a response model would drop any key it does not declare, and a
    field added to a signed body would then break its signature."""
    return Response(canonical(content), media_type="application/json")
SHA = "5d2a6c3e8f1b0a9d7c4e2f6a8b1d3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c"


class ReceiptPage(BaseModel):
    data: list[SignedReceipt]
    next_after: int | None = Field(description="pass as `after` for the rest of the chain; null at its end")


class PublicKey(BaseModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="the public key, base64url")
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    status: Literal["active", "retired"] = Field(description="active: signing new receipts now")
    created_at: str


class PublicKeys(BaseModel):
    keys: list[PublicKey]


RECEIPT_EXAMPLE = {
    "receipt": {
        "format": FORMAT, "kid": "NfgIm69HnWAkqt_kjnkiH-DWuCSMsKYrH5Hfx2ZwBQU", "job_id": JOB_ID, "tenant_id": "acme",
        "sequence": 7, "previous_sha256": SHA, "issued_at": "2026-11-02T10:00:09.412000Z", "state": "succeeded",
        "failure": None, "template": {"name": "generic", "version": "2026-11-22"},
        "profile": {"name": "generic", "version": "3f9a1c0e5b7d2a64"}, "images": {"requested": 1, "delivered": 1},
        "outputs": [{"n": 1, "key": f"acme/2026/11/{JOB_ID}/1.png", "sha256": SHA, "media_type": "image/png",
                     "size_bytes": 48213}],
        "candidates": [{"index": 0, "attempt": 1, "provider": "local-fast", "sha256": SHA, "verdict": "selected",
                        "failed": []},
                       {"index": 1, "attempt": 1, "provider": "local-fast", "sha256": SHA, "verdict": "rejected",
                        "failed": ["sharpness"]}],
        "credits": {"reserved": 10, "charged": 10, "released": 0, "retry_tokens_used": 0,
                    "price_book_version": "2026-11-01"},
        "provider_cost": {"total_micro_usd": 4000, "stages": [{"attempt": 1, "stage_index": 0, "stage": "generate",
                                                                "provider": "local-fast", "calls": 1,
                                                                "cost_micro_usd": 4000}]},
        "times": {"submitted": "2026-11-02T10:00:00Z", "admitted": "2026-11-02T10:00:01Z",
                  "succeeded": "2026-11-02T10:00:09Z"}},
    "sha256": SHA,
    "signature": {"alg": "EdDSA", "kid": "NfgIm69HnWAkqt_kjnkiH-DWuCSMsKYrH5Hfx2ZwBQU", "value": "q4…"},
}


@router.get("/v1/jobs/{job_id}/receipt", response_model=SignedReceipt,
            responses=problems.responses(404, 409) | {200: {"content": {"application/json": {
                "example": RECEIPT_EXAMPLE}}}})
async def get_receipt(job_id: str, tenant: ReceiptsReader, runtime: Runtime) -> Response:
    """The job's signed receipt, issued when the job is final and settled: what it was asked,
    produced and charged, chained to your previous receipt. Verify it offline with the keys
    of `/.well-known/genline-keys.json` (genline-client: `verify_receipt`). An erased job
    keeps its receipt, which holds no prompt. 409 while the job is not final."""
    parsed = parse_job_id(job_id)
    async with runtime.pool.connection() as conn:
        document = await issuing.receipt_of(conn, parsed, tenant_id=tenant)
        if document is None:
            state = await job_state(conn, parsed, tenant_id=tenant)
            if state is None and not await was_erased(conn, parsed, tenant_id=tenant):
                raise Problem(status=404, slug="job-not-found", detail=f"no job {job_id!r}")
            if state is not None and state not in FINAL_STATES:
                raise Problem(status=409, slug="job-not-final", detail=f"job {job_id} is {state}; its receipt is issued when it is final"
                              " and settled", extra={"state": state})
            raise Problem(status=404, slug="receipt-not-found", detail=f"job {job_id} ended before receipts were issued")
    return signed_json(document)


@router.get("/v1/receipts", response_model=ReceiptPage,
            responses={200: {"content": {"application/json": {"example": {"data": [RECEIPT_EXAMPLE],
                                                                          "next_after": 7}}}}})
async def list_receipts(tenant: ReceiptsReader, runtime: Runtime,
                        after: Annotated[int, Query(ge=0, le=2**62, description="the sequence to start after")] = 0,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Response:
    """Your receipts in chain order, after `sequence` `after` (0: from the first). Check the
    whole chain offline with genline-client's `verify_chain` (or `genline receipts verify`):
    a receipt changed, dropped or added breaks it."""
    async with runtime.pool.connection() as conn:
        documents = await issuing.chain(conn, tenant, after=after, limit=limit + 1)  # one more: is there a next page?
    page, more = documents[:limit], len(documents) > limit
    return signed_json({"data": page, "next_after": page[-1]["receipt"]["sequence"] if more else None})


KEYS_EXAMPLE = {"keys": [
    {"kty": "OKP", "crv": "Ed25519", "x": "gSy2n8-BzEvmT2klndBNfFC69VHhEPuZympafdVKVoU",
     "kid": "0We5eFRI2pq33vyZagEZlqtqqA-l4Onci9eiz6J7c2I", "alg": "EdDSA", "use": "sig", "status": "retired",
     "created_at": "2026-01-05T09:00:00Z"},
    {"kty": "OKP", "crv": "Ed25519", "x": "n6SVIEZS8W5vRTX_3CdNt-daIqCLI5G_haHedNPpuFo",
     "kid": "NfgIm69HnWAkqt_kjnkiH-DWuCSMsKYrH5Hfx2ZwBQU", "alg": "EdDSA", "use": "sig", "status": "active",
     "created_at": "2026-11-01T09:00:00Z"}]}


@router.get("/.well-known/genline-keys.json", response_model=PublicKeys, tags=["receipts"],
            responses={200: {"content": {"application/json": {"example": KEYS_EXAMPLE}}}})
async def signing_keys(request: Request, runtime: Runtime) -> JSONResponse:
    """The Ed25519 public keys (JWK) that receipts are signed with: the active one and every
    one rotated out, so receipts signed before a rotation still verify. No key needed."""
    async with runtime.pool.connection() as conn:
        keys = await issuing.published_keys(conn, request.app.state.signer.kid)
    return JSONResponse({"keys": keys}, headers={"Cache-Control": "public, max-age=300"})
