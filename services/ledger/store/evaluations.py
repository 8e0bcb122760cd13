"""Evaluations charged: one row each, so an evaluation is charged once whatever retries."""

from uuid import UUID

from services.common.contracts import EvaluationCharged
from services.common.db import Conn


async def charged_before(conn: Conn, evaluation_id: UUID) -> EvaluationCharged | None:
    row = await (await conn.execute("SELECT event FROM evaluation_charges WHERE evaluation_id = %s",
                                    [evaluation_id])).fetchone()
    return EvaluationCharged.model_validate(row["event"]) if row else None


async def record_charge(conn: Conn, charged: EvaluationCharged) -> bool:
    """False when the evaluation was charged meanwhile (the caller's transaction must roll back)."""
    row = await (await conn.execute(
        "INSERT INTO evaluation_charges (evaluation_id, tenant_id, amount, event) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (evaluation_id) DO NOTHING RETURNING 1",
        [charged.evaluation_id, charged.tenant_id, charged.amount, charged.model_dump_json()])).fetchone()
    return row is not None
