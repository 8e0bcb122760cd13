"""FastAPI dependencies: the service's runtime, its settings, and the caller's tenant."""

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common import telemetry
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.ingest.domain import hash_api_key
from services.common.problems import Problem
from services.ingest.settings import IngestSettings

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="genline"'}
# The scheme the OpenAPI document names; the key itself is checked below, with clearer problems.
api_key = HTTPBearer(scheme_name="apiKey", bearerFormat="gl_…", auto_error=False,
                     description="`Authorization: Bearer <api key>`; one tenant per key")


def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Store = Annotated[ObjectStore, Depends(get_store)]


async def current_tenant(runtime: Runtime, request: Request,
                         bearer: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)]) -> str:
    """`Authorization: Bearer <api key>`; every read and write is scoped to its tenant."""
    if not request.headers.get("authorization"):
        raise Problem(401, "missing-api-key", "send your API key as 'Authorization: Bearer <key>'", UNAUTHORIZED)
    if bearer is None:
        raise Problem(401, "invalid-api-key", "the Authorization header must be 'Bearer <key>'", UNAUTHORIZED)
    async with runtime.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT tenant_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
            [hash_api_key(bearer.credentials.strip())]
        )).fetchone()
    if row is None:
        raise Problem(401, "invalid-api-key", "the API key is not valid", UNAUTHORIZED)
    telemetry.bind_tenant(row["tenant_id"])
    return row["tenant_id"]


Tenant = Annotated[str, Depends(current_tenant)]
