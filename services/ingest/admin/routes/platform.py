"""What an operator watches (the console's operator view reads these), behind an operator
token with `platform:read`, on the admin port; not part of the public OpenAPI document.

`/admin/v1/providers`: every provider as the router sees it now (its gRPC ListProviders):
breaker, price, pass rates by template, calls in flight.

`/admin/v1/dead-letters`: how many messages each dead-letter topic holds, that is, messages
a service gave up on after its retries.
"""

import asyncio
import math
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import grpc
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.common.admin import Operator, OperatorWith
from services.common.bus import client_options, topic_sizes
from services.common.contracts import PUBLISHERS, ProviderStatus, QualityStatus, dead_letter_topic, topic_of
from services.common.problems import Problem
from services.common.protos import load
from services.common.templates import load_catalogue
from services.ingest.deps import Settings

pb, rpc = load("genline.router.v1")
router = APIRouter(prefix="/admin/v1", include_in_schema=False)
# The operator holding `platform:read` (a dependency FastAPI reads from the annotation; to the
# type checker, the operator it yields).
if TYPE_CHECKING:
    Reader: TypeAlias = Operator
else:
    Reader = OperatorWith("platform:read")


async def router_stub(request: Request) -> Any:
    """The router's gRPC stub: built from the protos at install, it carries no types."""
    return request.app.state.router_stub


RouterStub = Annotated[Any, Depends(router_stub)]


class ProviderList(BaseModel):
    providers: list[ProviderStatus]


class DeadLetters(BaseModel):
    topics: dict[str, int]
    total: int


def provider_status(provider: Any) -> ProviderStatus:
    quality = {template: QualityStatus(state=q.state, reason=q.reason, verdicts=q.verdicts,
                                       pass_rate=None if math.isnan(q.pass_rate) else q.pass_rate)
               for template, q in provider.quality.items()}
    fields = {name: getattr(provider, name) for name in ProviderStatus.model_fields if name not in ("quality", "pass_rates")}
    return ProviderStatus(**fields, pass_rates=dict(provider.pass_rates), quality=quality)


@router.get("/providers", response_model=ProviderList)
async def list_providers(_: Reader, stub: RouterStub, settings: Settings) -> ProviderList:
    templates = list(load_catalogue().templates)
    try:
        answer = await stub.ListProviders(pb.ListProvidersRequest(templates=templates),
                                          timeout=settings.router_grpc_timeout_s)
    except grpc.aio.AioRpcError:
        raise Problem(status=503, slug="router-unavailable", detail="the router does not answer; try again shortly",
                      headers={"Retry-After": "2"}, extra={"retry_after": 2}) from None
    return ProviderList(providers=[provider_status(p) for p in answer.providers])


@router.get("/dead-letters", response_model=DeadLetters)
async def dead_letters(_: Reader, settings: Settings) -> DeadLetters:
    topics = [dead_letter_topic(topic_of(p, settings.topic_namespace)) for p in PUBLISHERS]
    try:
        sizes = await asyncio.wait_for(topic_sizes(client_options(settings), topics), timeout=15)
    except Exception:  # noqa: BLE001 - whatever the broker client raised, the answer is the same
        raise Problem(status=503, slug="broker-unavailable", detail="the broker does not answer; try again shortly",
                      headers={"Retry-After": "2"}, extra={"retry_after": 2}) from None
    return DeadLetters(topics=sizes, total=sum(sizes.values()))
