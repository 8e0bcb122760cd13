"""The ledger's internal billing API, for ingest, which serves the public `/v1/billing`
routes, checks the caller's key and input, and forwards here with the tenant in the path.
Not exposed publicly; only ingest may call it (MAY_CALL: ledger/billing)."""

import json
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.identity import ServiceVerifier
from services.common.internal_calls import guard
from services.common.problems import Problem
from services.ledger.payments.rules import AutoTopUpRule, CheckoutAsked
from services.ledger.payments.service import Payments

PREFIX = "/internal/v1/tenants/{tenant}"
M = TypeVar("M", bound=BaseModel)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, UUID) else value


def answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, default=_json_value), status, media_type="application/json")


async def _body(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise Problem(status=422, slug="validation-error", detail=str(error)) from None


def routes(payments: Payments, verifier: ServiceVerifier) -> list[Route]:
    async def billing(request: Request) -> Response:
        return answer(await payments.billing(request.path_params["tenant"]))

    async def checkout(request: Request) -> Response:
        asked = await _body(request, CheckoutAsked)
        return answer(await payments.open_checkout(request.path_params["tenant"], asked), 201)

    async def auto_topup(request: Request) -> Response:
        rule = await _body(request, AutoTopUpRule)
        return answer(await payments.set_auto_topup(request.path_params["tenant"], rule))

    plain = [Route(f"{PREFIX}/billing", billing, methods=["GET"]),
             Route(f"{PREFIX}/checkout", checkout, methods=["POST"]),
             Route(f"{PREFIX}/auto-topup", auto_topup, methods=["PUT"])]
    return [guard(route, verifier, capability="billing") for route in plain]
