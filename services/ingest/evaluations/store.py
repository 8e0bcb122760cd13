"""Evaluations' SQL: an evaluation and its images' sources and verdicts, the runner's lease on
a batch, and the webhook it owes."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from services.common.db import Conn


@dataclass(frozen=True, kw_only=True)
class NewEvaluation:
    id: UUID
    tenant_id: str
    kind: str
    status: str
    request: dict[str, Any]
    profile: str
    sources: list[dict[str, Any]]
    webhook_url: str | None = None


async def insert_evaluation(conn: Conn, evaluation: NewEvaluation) -> None:
    await conn.execute(
        "INSERT INTO evaluations (id, tenant_id, kind, status, request, images, profile, webhook_url, webhook_state)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [evaluation.id, evaluation.tenant_id, evaluation.kind, evaluation.status, Jsonb(evaluation.request),
         len(evaluation.sources), evaluation.profile, evaluation.webhook_url,
         "waiting" if evaluation.webhook_url else None])
    async with conn.cursor() as cursor:
        await cursor.executemany("INSERT INTO evaluation_images (evaluation_id, n, source) VALUES (%s, %s, %s)",
                                 [(evaluation.id, n, Jsonb(source)) for n, source in enumerate(evaluation.sources, 1)])


@dataclass(frozen=True, kw_only=True)
class ImageOutcome:
    """An image judged (its key and verdict) or not (why)."""

    n: int
    key: str | None = None
    verdict: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


async def record_images(conn: Conn, evaluation_id: UUID, *, outcomes: list[ImageOutcome]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "UPDATE evaluation_images SET key = %s, verdict = %s, error = %s WHERE evaluation_id = %s AND n = %s",
            [(o.key, Jsonb(o.verdict) if o.verdict is not None else None, Jsonb(o.error) if o.error else None,
              evaluation_id, o.n) for o in outcomes])
    if outcomes:
        await conn.execute("UPDATE evaluations SET next_image = greatest(next_image, %s), status = 'running'"
                           " WHERE id = %s", [max(o.n for o in outcomes), evaluation_id])


async def end_evaluation(conn: Conn, evaluation_id: UUID, *, charge: dict[str, Any] | None,
                         failure: dict[str, Any] | None = None) -> None:
    """Completed with its charge, or failed with why; a webhook owed is now due."""
    await conn.execute(
        "UPDATE evaluations SET status = %s, charge = %s, failure = %s, completed_at = now(),"
        " webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END, not_before = now()"
        " WHERE id = %s", ["failed" if failure else "completed", Jsonb(charge) if charge else None,
                           Jsonb(failure) if failure else None, evaluation_id])


async def read_evaluation(conn: Conn, evaluation_id: UUID, *, tenant_id: str | None = None) -> dict[str, Any] | None:
    clause = " AND tenant_id = %s" if tenant_id is not None else ""
    row = await (await conn.execute(f"SELECT * FROM evaluations WHERE id = %s{clause}",
                                    [evaluation_id] + ([tenant_id] if tenant_id is not None else []))).fetchone()
    return dict(row) if row else None


async def evaluation_images(conn: Conn, evaluation_id: UUID, *, after: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
    rows = await (await conn.execute("SELECT n, source, key, verdict, error FROM evaluation_images"
                                     " WHERE evaluation_id = %s AND n > %s ORDER BY n LIMIT %s",
                                     [evaluation_id, after, limit])).fetchall()
    return [dict(r) for r in rows]


async def claim_evaluation(conn: Conn, lease_s: float) -> dict[str, Any] | None:
    """A batch with images to judge or a webhook due, leased for `lease_s`."""
    row = await (await conn.execute(
        "UPDATE evaluations SET lease_until = now() + make_interval(secs => %(lease)s) WHERE id = ("
        " SELECT id FROM evaluations WHERE (status IN ('pending', 'running') OR webhook_state = 'pending')"
        " AND not_before <= now() AND (lease_until IS NULL OR lease_until < now()) ORDER BY not_before LIMIT 1"
        " FOR UPDATE SKIP LOCKED) RETURNING *", {"lease": lease_s})).fetchone()
    return dict(row) if row else None


async def next_due_s(conn: Conn) -> float | None:
    """Seconds until the first batch with images to judge or a webhook due may be claimed (None: there is none)."""
    row = await (await conn.execute(
        "SELECT extract(epoch FROM min(greatest(not_before, lease_until)) - now())::float8 AS due_s FROM evaluations"
        " WHERE status IN ('pending', 'running') OR webhook_state = 'pending'")).fetchone()
    return row["due_s"] if row else None


async def release_evaluation(conn: Conn, evaluation_id: UUID, *, wait_s: float) -> None:
    await conn.execute("UPDATE evaluations SET lease_until = NULL, not_before = now() + make_interval(secs => %s)"
                       " WHERE id = %s", [wait_s, evaluation_id])


async def webhook_tried(conn: Conn, evaluation_id: UUID, *, state: str) -> None:
    await conn.execute("UPDATE evaluations SET webhook_state = %s, webhook_attempts = webhook_attempts + 1"
                       " WHERE id = %s", [state, evaluation_id])
