"""`/internal/v1`: the data-key API, for the services that need a job's content in clear
(the router to generate, the scorer for prompt alignment, delivery for the webhook body).

Not part of the public API: with an admin port it answers there only (a port a
NetworkPolicy closes to the public), and only to the services `MAY_CALL` names, proven by
their service token (services/common/identity.py): 401 without one, 403 for another
service. A job erased, or unknown, has no key (404): its sealed prompt reads as erased.
Every read is counted per calling service."""

import base64
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from services.common import telemetry
from services.common.identity import Forbidden, Unauthenticated
from services.common.internal_calls import problem_of
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest import data_keys
from services.ingest.deps import Runtime, Settings
from services.ingest.key_encryption import keyring_of
from services.ingest.settings import IngestSettings

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


class DataKey(BaseModel):
    job_id: UUID
    key: str  # base64 of the 32-byte AES-256-GCM key


def check_caller(request: Request, settings: IngestSettings, *, authorization: str | None) -> str:
    """The proven service calling, once it may read data keys."""
    if settings.admin_port and request.scope["server"][1] != settings.admin_port:
        raise Problem(status=404, slug="not-found", detail="no such resource on this port")
    try:
        caller: str = request.app.state.service_verifier.authorize(authorization, "data-keys")
    except (Unauthenticated, Forbidden) as error:
        raise problem_of(error) from None
    return caller


@router.get("/jobs/{job_id}/data-key", response_model=DataKey)
async def data_key(job_id: str, request: Request, runtime: Runtime, settings: Settings,
                   authorization: Annotated[str | None, Header()] = None) -> DataKey:
    caller = check_caller(request, settings, authorization=authorization)
    return await key_answered(runtime, settings, owner=Owner("job", job_id, caller))


@router.get("/subjects/{subject_id}/data-key", response_model=DataKey)
async def subject_data_key(subject_id: str, request: Request, runtime: Runtime, settings: Settings,
                           authorization: Annotated[str | None, Header()] = None) -> DataKey:
    """A subject's key (its sealed photos and centroid), a row of `data_keys` under the
    subject's id; 404 once the subject was erased."""
    caller = check_caller(request, settings, authorization=authorization)
    return await key_answered(runtime, settings, owner=Owner("subject", subject_id, caller))


@dataclass(frozen=True)
class Owner:
    """Whose key is asked for (a job or a subject, by the id in the path) and by which service."""

    kind: str
    id: str
    caller: str


async def key_answered(runtime: ServiceRuntime, settings: IngestSettings, *, owner: Owner) -> DataKey:
    try:
        parsed = UUID(owner.id)
    except ValueError:
        raise Problem(status=404, slug="data-key-not-found", detail=f"no {owner.kind} {owner.id!r}") from None
    async with runtime.pool.connection() as conn:
        key = await data_keys.key_of(conn, parsed, keyring=keyring_of(settings))
    telemetry.DATA_KEYS_READ.labels(owner.caller, "found" if key else "none").inc()
    if key is None:
        raise Problem(status=404, slug="data-key-not-found", detail=f"{owner.kind} {owner.id} has no data key: it was erased, or never"
                                                 " existed")
    return DataKey(job_id=parsed, key=base64.b64encode(key).decode())
