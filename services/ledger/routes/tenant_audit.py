"""The ledger's internal audit API: one tenant's trail, for ingest, which serves it to the
tenant's owners and admins (`GET /v1/audit`) after checking their role. Not exposed publicly;
only ingest may call it (MAY_CALL: ledger/audit)."""

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.identity import ServiceVerifier
from services.common.internal_calls import guard
from services.common.problems import Problem
from services.ledger.routes.billing import answer
from services.ledger.store import audit as trail
from services.ledger.store.audit import AuditQuery

MAX_ENTRIES = 5000


def parsed_time(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(status=422, slug="validation-error", detail=f"{name} must be an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise Problem(status=422, slug="validation-error", detail=f"{name} must name its offset")
    return moment


def limit_of(request: Request) -> int:
    value = request.query_params.get("limit", "100")
    if not value.isdigit() or not 1 <= int(value) <= MAX_ENTRIES:
        raise Problem(status=422, slug="validation-error", detail=f"limit must be between 1 and {MAX_ENTRIES}")
    return int(value)


def routes(verifier: ServiceVerifier) -> list[Route]:
    async def tenant_trail(request: Request) -> Response:
        params = request.query_params
        query = AuditQuery(actor=params.get("actor"), action=params.get("action"),
                           tenant_id=request.path_params["tenant"], since=parsed_time(request, "since"),
                           until=parsed_time(request, "until"), limit=limit_of(request))
        async with request.app.state.runtime.pool.connection() as conn:
            rows = await trail.entries(conn, query)
        return answer({"entries": rows})

    return [guard(Route("/internal/v1/tenants/{tenant}/audit", tenant_trail, methods=["GET"]), verifier, capability="audit")]
