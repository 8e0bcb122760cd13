"""Delivery's internal HTTP API over the webhook tables it owns, for ingest, which serves the
public `/v1/webhook-endpoints` routes, checks the caller's key and input, and forwards here
with the tenant in the path. Not exposed publicly; every lookup is scoped to that tenant, so
another tenant's endpoint or attempt is as unknown as one that never existed (404). Every
change to an endpoint is on the audit trail, recorded in the change's transaction, with the
actor ingest names in `X-Genline-Actor`."""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.audit import Action, record_action, system_actor
from services.common.db import Conn
from services.common.runtime import ServiceRuntime
from services.delivery import domain, store
from services.delivery.settings import DeliverySettings
from services.delivery.webhooks import WebhookSender

PREFIX = "/internal/v1/tenants/{tenant}"
class NotFound(Exception):
    pass


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def answer(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, default=_json_value), status, media_type="application/json")


def problem(status: int, slug: str, *, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "slug": slug, "detail": detail}, status)


def parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound from None


def attempts_limit(request: Request) -> int:
    """How many attempts a listing shows: `?limit=`, 100 unless said, never more than 500."""
    return min(int(request.query_params.get("limit", "100")), 500)


@dataclass(frozen=True)
class EndpointAudit:
    """A change to a webhook endpoint as the audit trail records it: what was done (`create`,
    `update`, `delete`, `rotate_secret`), to which endpoint, and with what."""

    action: str
    endpoint_id: uuid.UUID
    details: dict[str, object] = field(default_factory=dict)


class WebhookApi:
    def __init__(self, runtime: ServiceRuntime, sender: WebhookSender, *, settings: DeliverySettings) -> None:
        self.runtime, self.pool, self.sender, self.settings = runtime, runtime.pool, sender, settings

    async def _audit(self, conn: Conn, request: Request, *, change: EndpointAudit) -> None:
        actor = request.headers.get("x-genline-actor") or system_actor("delivery")
        await record_action(self.runtime, conn, action=Action(actor=actor, name=f"webhook_endpoint.{change.action}",
                                                       target=f"webhook_endpoint:{change.endpoint_id}",
                                                       tenant_id=request.path_params["tenant"], details=change.details))

    def routes(self) -> list[Route]:
        endpoints, one = f"{PREFIX}/webhook-endpoints", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}"
        return [
            Route(endpoints, self.create, methods=["POST"]),
            Route(endpoints, self.list_endpoints, methods=["GET"]),
            Route(one, self.get, methods=["GET"]),
            Route(one, self.update, methods=["PATCH"]),
            Route(one, self.delete, methods=["DELETE"]),
            Route(f"{one}/rotate-secret", self.rotate, methods=["POST"]),
            Route(f"{one}/attempts", self.endpoint_attempts, methods=["GET"]),
            Route(f"{PREFIX}/jobs/{{job_id}}/webhook-attempts", self.job_attempts, methods=["GET"]),
            Route(f"{PREFIX}/webhook-attempts/{{attempt_id}}/redeliver", self.redeliver, methods=["POST"]),
            Route(f"{PREFIX}/webhook-secret", self.secret, methods=["GET"]),
        ]

    async def _endpoint(self, conn: Conn, tenant: str, *, endpoint_id: str, lock: bool = False) -> dict[str, Any]:
        row = await store.endpoint(conn, tenant, endpoint_id=parse_uuid(endpoint_id), lock=lock)
        if row is None:
            raise NotFound
        return row

    async def create(self, request: Request) -> Response:
        body, tenant = await request.json(), request.path_params["tenant"]
        secret = domain.new_webhook_secret()
        async with self.pool.connection() as conn, conn.transaction():
            row = await store.create_endpoint(conn, store.NewEndpoint(
                tenant_id=tenant, url=body["url"], description=body.get("description", ""), event_types=body["event_types"], enabled=body.get("enabled", True), secret=secret))
            await self._audit(conn, request, change=EndpointAudit("create", row["id"], {
                "url": row["url"], "event_types": row["event_types"], "enabled": row["enabled"]}))
        self.runtime.relay.notify()
        return answer(row | {"secret": secret}, 201)

    async def list_endpoints(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            rows = await store.endpoints(conn, request.path_params["tenant"])
        return answer({"data": rows})

    async def get(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            return answer(await self._endpoint(conn, request.path_params["tenant"], endpoint_id=request.path_params["endpoint_id"]))

    async def update(self, request: Request) -> Response:
        """Changes what is given; enabling an endpoint again clears why it was disabled."""
        body, params = await request.json(), request.path_params
        changes = {k: body[k] for k in ("url", "description", "event_types", "enabled") if k in body}
        if changes.get("enabled"):
            changes["disabled_reason"] = None
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._endpoint(conn, params["tenant"], endpoint_id=params["endpoint_id"], lock=True)
            if changes:
                row = await store.update_endpoint(conn, row["id"], changes=changes)
                await self._audit(conn, request, change=EndpointAudit("update", row["id"], changes))
        self.runtime.relay.notify()
        return answer(row)

    async def delete(self, request: Request) -> Response:
        params = request.path_params
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._endpoint(conn, params["tenant"], endpoint_id=params["endpoint_id"], lock=True)
            await store.delete_endpoint(conn, row["id"])
            await self._audit(conn, request, change=EndpointAudit("delete", row["id"], {"url": row["url"]}))
        self.runtime.relay.notify()
        return Response(status_code=204)

    async def rotate(self, request: Request) -> Response:
        """A new secret signs from now on; the one it replaces signs too for `overlap_s`."""
        body, params = await request.json(), request.path_params
        overlap_s = body.get("overlap_s", self.settings.webhook_secret_overlap_s)
        secret = domain.new_webhook_secret()
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._endpoint(conn, params["tenant"], endpoint_id=params["endpoint_id"], lock=True)
            row = await store.rotate_secret(conn, row["id"], secret=secret, previous_expires_at=datetime.now(UTC) + timedelta(seconds=overlap_s))
            await self._audit(conn, request, change=EndpointAudit("rotate_secret", row["id"], {"overlap_s": overlap_s}))
        self.runtime.relay.notify()
        return answer(row | {"secret": secret})

    async def endpoint_attempts(self, request: Request) -> Response:
        params = request.path_params
        async with self.pool.connection() as conn:
            row = await self._endpoint(conn, params["tenant"], endpoint_id=params["endpoint_id"])
            rows = await store.endpoint_attempts(conn, params["tenant"], endpoint_id=row["id"], limit=attempts_limit(request))
        return answer({"data": rows})

    async def job_attempts(self, request: Request) -> Response:
        params = request.path_params
        async with self.pool.connection() as conn:
            rows = await store.job_attempts(conn, params["tenant"], job_id=parse_uuid(params["job_id"]), limit=attempts_limit(request))
        return answer({"data": rows})

    async def redeliver(self, request: Request) -> Response:
        """Queue the attempt's message again, at once, with the same `webhook-id`."""
        params = request.path_params
        async with self.pool.connection() as conn, conn.transaction():
            row = await store.attempted_message(conn, params["tenant"], attempt_id=parse_uuid(params["attempt_id"]))
            if row is None:
                raise NotFound
            if row["enabled"] is False:
                return problem(409, "endpoint-disabled", detail="the endpoint is disabled; enable it before redelivering")
            await store.send_again(conn, row["id"])
        self.sender.notify()
        return answer({"message_id": row["id"], "webhook_id": row["webhook_id"], "state": "pending"}, 202)

    async def secret(self, request: Request) -> Response:
        async with self.pool.connection() as conn:
            return answer({"key": await store.job_secret(conn, request.path_params["tenant"])})


def not_found_handler(_request: Request, _exc: Exception) -> JSONResponse:
    return problem(404, "not-found", detail="no such webhook endpoint or attempt")
