"""The ledger's internal evaluation charges, for ingest's /v1/evaluations: an evaluation's
images charged at the price book's price, at once, once per evaluation (a retry answers the
first charge), or refused (402) when the credits are not there. Only ingest may call it
(MAY_CALL: ledger/evaluations)."""

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.bus import retry_races
from services.common.contracts import EvaluationCharged
from services.common.identity import ServiceVerifier
from services.common.internal_calls import guard
from services.common.problems import Problem
from services.ledger.evaluations import ChargeRefused, EvaluationCharge, charge_evaluation
from services.ledger.routes.billing import answer
from services.ledger.service import LedgerApp
from services.ledger.store import write_book
from services.ledger.store.evaluations import charged_before, record_charge


class ChargeAsked(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    images: int = Field(ge=1, le=100_000)


class ChargedMeanwhile(Exception):
    """Another request charged the evaluation between the look and the write: look again."""


async def charge(ledger: LedgerApp, asked: EvaluationCharge) -> EvaluationCharged:
    runtime = ledger.runtime

    async def once() -> EvaluationCharged:
        async with runtime.pool.connection() as conn, conn.transaction():
            before = await charged_before(conn, asked.evaluation_id)
            if before is not None:
                return before
            book = await ledger.ledger.open_book(conn, [asked.tenant_id])
            decided = charge_evaluation(book, asked, now=datetime.now(UTC))
            if isinstance(decided, ChargeRefused):
                raise Problem(status=402, slug=decided.code.replace("_", "-"), detail=decided.reason,
                              extra={"required": decided.required, "available": decided.available})
            if not await record_charge(conn, decided):
                raise ChargedMeanwhile()
            await write_book(conn, book)
            await runtime.emit(conn, decided)
            return decided

    try:
        charged = await retry_races(once)
    except ChargedMeanwhile:
        charged = await retry_races(once)
    runtime.relay.notify()
    return charged


def routes(ledger: LedgerApp, verifier: ServiceVerifier) -> list[Route]:
    async def evaluation_charge(request: Request) -> Response:
        try:
            evaluation_id = uuid.UUID(request.path_params["evaluation"])
            asked = ChargeAsked.model_validate_json(await request.body())
        except (ValueError, ValidationError) as error:
            raise Problem(status=422, slug="validation-error", detail=str(error)) from None
        charged = await charge(ledger, EvaluationCharge(asked.tenant_id, evaluation_id, asked.images))
        return answer(charged.model_dump(mode="json"), 201)

    return [guard(Route("/internal/v1/evaluations/{evaluation}/charge", evaluation_charge, methods=["POST"]),
                  verifier, capability="evaluations")]
