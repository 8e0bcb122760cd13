"""`/v1/webhook-endpoints`, `/v1/webhook-attempts`, a job's attempts and the per-job secret.

Delivery owns the endpoints and every attempt (it sends the webhooks); these routes check the
caller's key and input, refuse URLs on private addresses, and ask delivery's internal API,
always for the caller's tenant only.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, cast
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from services.common import problems
from services.common.api import RequestModel
from services.common.contracts import DEFAULT_ENDPOINT_EVENTS, ENDPOINT_EVENTS, EndpointEvent
from services.common.problems import Problem
from services.ingest.deps import Caller, Runtime, ScopedCaller, Settings
from services.ingest.jobs import JOB_ID, parse_job_id, read_view
from services.ingest.webhooks.targets import check_webhook_url

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problems.responses(503))

ENDPOINT_ID = "6a1f3e2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
ATTEMPT_ID = "3c9e1d7a-2b4f-4a6c-9d8e-1f2a3b4c5d6e"
ENDPOINT_EXAMPLE: JsonDict = {
    "id": ENDPOINT_ID, "url": "https://example.com/hooks/genline", "description": "production",
    "event_types": ["job.succeeded", "job.failed"], "enabled": True, "disabled_reason": None,
    "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z", "previous_secret_expires_at": None}
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ATTEMPT_EXAMPLE: JsonDict = {
    "id": ATTEMPT_ID, "webhook_id": "msg_5f0c7b1e9d2a4c6e8f1a3b5c7d9e0f12", "endpoint_id": ENDPOINT_ID, "job_id": JOB_ID,
    "event_type": "job.succeeded", "url": "https://example.com/hooks/genline", "message_state": "delivered",
    "attempted_at": "2026-11-02T10:00:10Z", "status_code": 200, "latency_ms": 84, "response_excerpt": "ok",
    "error": None}
EndpointId = Annotated[UUID, Path(examples=[ENDPOINT_ID])]
AttemptId = Annotated[UUID, Path(examples=[ATTEMPT_ID])]


class EndpointRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "url": "https://example.com/hooks/genline", "event_types": ["job.succeeded", "job.failed"],
        "description": "production"}]})

    url: str = Field(min_length=1, max_length=2000, description="http(s); public addresses only")
    description: str = Field("", max_length=200)
    event_types: list[EndpointEvent] = Field(cast(list[EndpointEvent], list(DEFAULT_ENDPOINT_EVENTS)), min_length=1,
                                             max_length=len(ENDPOINT_EVENTS),
                                             description="the events to send: a job's final events (job.*), its"
                                                         " progress while it runs (job.progress, only when named)"
                                                         " and your account's alerts (account.balance_low,"
                                                         " account.grant_expiring, account.key_cap_reached,"
                                                         " billing.topup_failed); all but job.progress by default")
    enabled: bool = True


class EndpointChange(RequestModel):
    """Only the fields given change; `enabled: true` turns back on an endpoint disabled by a 410."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": True, "event_types": ["job.succeeded"]}]})

    # None stands for a field not sent (model_dump(exclude_unset=True)); a null sent is refused,
    # and the document shows each field with its own type: so not Optional, to the type checker too.
    url: str = Field(None, min_length=1, max_length=2000)  # type: ignore[assignment]
    description: str = Field(None, max_length=200)  # type: ignore[assignment]
    event_types: list[EndpointEvent] = Field(None, min_length=1, max_length=len(ENDPOINT_EVENTS))  # type: ignore[arg-type]
    enabled: bool = Field(None)  # type: ignore[assignment]


class Rotation(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_s": 3600}]})

    overlap_s: int = Field(None, ge=0, le=7 * 24 * 3600,  # type: ignore[assignment]  # None: not sent
                           description="seconds the old secret keeps signing beside the new one; 24 h by default")


class Endpoint(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_EXAMPLE]})

    id: UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="why delivery turned it off, e.g. the receiver answered 410")
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="after a rotation, until when the previous secret signs too")


class EndpointWithSecret(Endpoint):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_EXAMPLE | {"secret": SECRET_EXAMPLE}]})

    secret: str = Field(description="the Standard Webhooks signing secret; shown only now")


class EndpointList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [ENDPOINT_EXAMPLE]}]})

    data: list[Endpoint]


class Attempt(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ATTEMPT_EXAMPLE]})

    id: UUID
    webhook_id: str = Field(description="the `webhook-id` header: the same on every retry and redelivery")
    endpoint_id: UUID | None = Field(description="null for the job's own webhook_url")
    job_id: UUID | None = Field(description="null for an alert of your account")
    event_type: str
    url: str
    message_state: str = Field(description="pending (more attempts to come), delivered, failed or abandoned")
    attempted_at: datetime
    status_code: int | None = Field(description="the receiver's answer; null when none came (see error)")
    latency_ms: int
    response_excerpt: str
    error: str | None


class AttemptList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [ATTEMPT_EXAMPLE]}]})

    data: list[Attempt]


class Redelivery(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message_id": "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "webhook_id": ATTEMPT_EXAMPLE["webhook_id"],
        "state": "pending"}]})

    message_id: UUID
    webhook_id: str
    state: str


class JobSecret(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"key": SECRET_EXAMPLE}]})

    key: str = Field(description="signs the webhooks of jobs that name their own webhook_url")


@dataclass(frozen=True)
class DeliveryClient:
    """Delivery's internal API for one caller: its tenant, and its key as the actor of the
    changes it makes (audit trail)."""

    http: httpx.AsyncClient
    tenant: str
    actor: str

    async def ask(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> Any:
        """Delivery's answer for the caller's tenant; its problems become ours, its absence a 503."""
        try:
            response = await self.http.request(method, f"/internal/v1/tenants/{self.tenant}{path}", json=body,
                                               headers={"x-genline-actor": self.actor})
            answer: Any = response.json() if response.content else None
        except (httpx.HTTPError, ValueError):
            raise delivery_unavailable() from None
        if response.status_code >= 500 or (response.status_code >= 400 and not isinstance(answer, dict)):
            raise delivery_unavailable()
        if response.status_code >= 400:
            raise Problem(status=response.status_code, slug=answer["slug"], detail=answer["detail"])
        return answer


# The caller whose key holds `webhooks:manage` (a dependency FastAPI reads from the annotation;
# to the type checker, the Caller it yields).
if TYPE_CHECKING:
    WebhooksManager: TypeAlias = Caller
else:
    WebhooksManager = ScopedCaller("webhooks:manage")


async def delivery_client(request: Request, caller: WebhooksManager) -> DeliveryClient:
    return DeliveryClient(request.app.state.delivery_http, caller.tenant_id, caller.actor)


# Every route here needs a key with the scope `webhooks:manage`.
Delivery = Annotated[DeliveryClient, Depends(delivery_client)]


def delivery_unavailable() -> Problem:
    return Problem(status=503, slug="delivery-unavailable", detail="webhooks cannot be reached right now; try again shortly",
                   headers={"Retry-After": "2"}, extra={"retry_after": 2})


def endpoint_path(endpoint_id: UUID) -> str:
    return f"/webhook-endpoints/{endpoint_id}"


NOT_FOUND = problems.responses(404)


@router.post("/webhook-endpoints", status_code=201, response_model=EndpointWithSecret)
async def create_webhook_endpoint(body: EndpointRequest, settings: Settings, delivery: Delivery) -> Any:
    """Register a URL for the events of your jobs. The answer holds the signing secret
    (`whsec_…`), shown only now; every request is signed to the Standard Webhooks spec
    (`webhook-id`, `webhook-timestamp`, `webhook-signature`). A URL on a private, loopback or
    link-local address is refused (422)."""
    await check_webhook_url(body.url, settings)
    return await delivery.ask("POST", "/webhook-endpoints", body=body.model_dump(mode="json"))


@router.get("/webhook-endpoints", response_model=EndpointList)
async def list_webhook_endpoints(delivery: Delivery) -> Any:
    return await delivery.ask("GET", "/webhook-endpoints")


@router.get("/webhook-endpoints/{endpoint_id}", response_model=Endpoint, responses=NOT_FOUND)
async def get_webhook_endpoint(endpoint_id: EndpointId, delivery: Delivery) -> Any:
    return await delivery.ask("GET", endpoint_path(endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=Endpoint, responses=NOT_FOUND)
async def update_webhook_endpoint(endpoint_id: EndpointId, body: EndpointChange, settings: Settings,
                                  delivery: Delivery) -> Any:
    """Change the URL, the events, the description, or turn the endpoint off and on."""
    if body.url is not None:
        await check_webhook_url(body.url, settings)
    return await delivery.ask("PATCH", endpoint_path(endpoint_id),
                              body=body.model_dump(mode="json", exclude_unset=True))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
async def delete_webhook_endpoint(endpoint_id: EndpointId, delivery: Delivery) -> Response:
    """Nothing more is sent to it, retries included."""
    await delivery.ask("DELETE", endpoint_path(endpoint_id))
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret,
             responses=NOT_FOUND)
async def rotate_webhook_secret(endpoint_id: EndpointId, delivery: Delivery, body: Rotation | None = None) -> Any:
    """A new secret, shown only now, signs from now on; the old one signs beside it (two
    signatures in `webhook-signature`) for `overlap_s`, so receivers can switch without a gap."""
    change = body.model_dump(exclude_unset=True) if body else {}
    return await delivery.ask("POST", f"{endpoint_path(endpoint_id)}/rotate-secret", body=change)


@router.get("/webhook-endpoints/{endpoint_id}/attempts", response_model=AttemptList, responses=NOT_FOUND)
async def list_webhook_attempts(endpoint_id: EndpointId, delivery: Delivery) -> Any:
    """Every attempt to send to this endpoint, newest first: time, status, latency and the
    start of the answer."""
    return await delivery.ask("GET", f"{endpoint_path(endpoint_id)}/attempts")


@router.post("/webhook-attempts/{attempt_id}/redeliver", status_code=202, response_model=Redelivery,
             responses=problems.responses(404, 409))
async def redeliver_webhook(attempt_id: AttemptId, delivery: Delivery) -> Any:
    """Send the attempt's event again, now, with the same `webhook-id` (receivers that saw it
    already can ignore it), and with the retry schedule from its start."""
    return await delivery.ask("POST", f"/webhook-attempts/{attempt_id}/redeliver")


@router.get("/jobs/{job_id}/webhook-attempts", response_model=AttemptList, responses=NOT_FOUND, tags=["jobs"])
async def list_job_webhook_attempts(job_id: str, runtime: Runtime, delivery: Delivery) -> Any:
    """Every webhook attempt about this job, to every endpoint and its own URL, newest first."""
    parsed = parse_job_id(job_id)
    async with runtime.pool.connection() as conn:
        if await read_view(conn, parsed, tenant_id=delivery.tenant) is None:
            raise Problem(status=404, slug="job-not-found", detail=f"no job {job_id!r}")
    return await delivery.ask("GET", f"/jobs/{parsed}/webhook-attempts")


@router.get("/webhooks/default/secret", response_model=JobSecret)
async def get_job_webhook_secret(delivery: Delivery) -> Any:
    """The secret that signs the webhooks of jobs naming their own `webhook_url`."""
    return await delivery.ask("GET", "/webhook-secret")
