"""Calls to the ledger over gRPC: its messages, its stub as a route dependency, and a call
whose errors become the API's problems."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias
from uuid import UUID

import grpc
from fastapi import Depends, Request

from services.common.contracts import SubjectRef
from services.common.problems import Problem
from services.common.protos import load

pb, rpc = load("genline.ledger.v1")
# The ledger's stub and its messages are built from the protos at install: they carry no types.
LedgerStub: TypeAlias = Any


async def ledger_stub(request: Request) -> LedgerStub:
    return request.app.state.ledger_stub


Ledger = Annotated[LedgerStub, Depends(ledger_stub)]


async def call_ledger(method: Callable[..., Awaitable[Any]], message: Any, *, timeout_s: float) -> Any:
    try:
        return await method(message, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Problem(status=422, slug="invalid-quote", detail=exc.details()) from None
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise Problem(status=503, slug="ledger-unavailable", detail="the ledger does not answer; try again shortly",
                      headers={"Retry-After": "2"}, extra={"retry_after": 2}) from None


@dataclass(frozen=True)
class LedgerClient:
    """The ledger's stub and how long a call to it may take."""

    stub: LedgerStub
    timeout_s: float

    async def quote(self, quote: "QuoteAsk") -> Any:
        """The ledger's quote; None when it knows no such tenant (see call_ledger)."""
        return await call_ledger(self.stub.Quote, quote.message(), timeout_s=self.timeout_s)

    async def key_spend(self, tenant_id: str, key_ids: list[UUID]) -> Any:
        """What each of the tenant's keys spent today and this month (see call_ledger)."""
        return await call_ledger(self.stub.GetKeySpend, pb.GetKeySpendRequest(
            tenant_id=tenant_id, api_key_ids=[str(key) for key in key_ids]), timeout_s=self.timeout_s)


@dataclass(frozen=True)
class SubjectQuote:
    """A job's subject as the ledger prices its training line: which subject, its photo set,
    and how its identity is carried."""

    subject_id: UUID
    photo_set_sha256: str
    identity: str

    @classmethod
    def of(cls, subject: SubjectRef | None, identity: str) -> "SubjectQuote | None":
        return cls(subject.subject_id, subject.photo_set_sha256, identity) if subject is not None else None


@dataclass(frozen=True, kw_only=True)
class QuoteAsk:
    """What the ledger is asked to price: so many images of a template in a tier for a tenant
    (retry tokens spent first where asked), or clips of a length and resolution."""

    tenant_id: str
    template: str
    tier: str
    images: int = 1
    use_retry_tokens: bool = False
    video_duration_s: float | None = None
    video_resolution: str | None = None
    subject: SubjectQuote | None = None

    def message(self) -> Any:
        clips = {"video_duration_s": self.video_duration_s, "video_resolution": self.video_resolution}
        subject = self.subject
        of_subject = {"subject_id": str(subject.subject_id), "photo_set_sha256": subject.photo_set_sha256,
                      "identity": subject.identity} if subject is not None else {}
        return pb.QuoteRequest(tenant_id=self.tenant_id, template=self.template, tier=self.tier, images=self.images,
                               use_retry_tokens=self.use_retry_tokens, **of_subject,
                               **{name: value for name, value in clips.items() if value is not None})
