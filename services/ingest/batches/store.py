"""Batches' SQL: input files and their chunks, batches, each line's job or refusal, the runner's
lease, the counts a batch shows and the pages its output and error files are made from."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from services.common.db import Conn, inserted_if_absent

# A job's states that end it well, and those that end it without images.
DELIVERED = ("succeeded", "partially_succeeded")
UNDELIVERED = ("failed", "rejected", "expired", "canceled")
LINE_COLUMNS = {"batch_id": "uuid", "line": "int4", "custom_id": "text", "job_id": "uuid", "asked": "jsonb",
                "status_code": "int4", "error": "jsonb"}


@dataclass(frozen=True, kw_only=True)
class NewFile:
    id: UUID
    tenant_id: str
    purpose: str
    kind: str
    filename: str
    bytes: int = 0
    lines: int = 0
    endpoint: str | None = None
    batch_id: UUID | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """`lines` whole lines of a file from `first_line`, in one object of `bytes`."""

    chunk: int
    first_line: int
    lines: int
    bytes: int


async def insert_file(conn: Conn, file: NewFile, *, chunks: list[Chunk]) -> dict[str, Any]:
    row = await (await conn.execute(
        "INSERT INTO batch_files (id, tenant_id, purpose, kind, filename, bytes, lines, endpoint, batch_id,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        [file.id, file.tenant_id, file.purpose, file.kind, file.filename, file.bytes, file.lines, file.endpoint,
         file.batch_id, file.expires_at])).fetchone()
    for chunk in chunks:
        await conn.execute("INSERT INTO batch_file_chunks (file_id, chunk, first_line, lines, bytes)"
                           " VALUES (%s, %s, %s, %s, %s)", [file.id, chunk.chunk, chunk.first_line, chunk.lines,
                                                            chunk.bytes])
    assert row is not None
    return dict(row)


async def read_file(conn: Conn, file_id: UUID, *, tenant_id: str) -> dict[str, Any] | None:
    row = await (await conn.execute("SELECT * FROM batch_files WHERE id = %s AND tenant_id = %s",
                                    [file_id, tenant_id])).fetchone()
    return dict(row) if row else None


async def batch_reading(conn: Conn, file_id: UUID) -> UUID | None:
    """A batch that has not ended and still reads this input file, if any."""
    row = await (await conn.execute(
        "SELECT id FROM batches WHERE input_file_id = %s AND status IN ('validating', 'in_progress', 'finalizing',"
        " 'cancelling') LIMIT 1", [file_id])).fetchone()
    return row["id"] if row else None


async def delete_file(conn: Conn, file_id: UUID, *, tenant_id: str) -> list[Chunk] | None:
    """Delete the tenant's file (its chunks' rows with it); the chunks it had, None when there was no such file."""
    chunks = await chunks_of(conn, file_id)
    row = await (await conn.execute("DELETE FROM batch_files WHERE id = %s AND tenant_id = %s RETURNING id",
                                    [file_id, tenant_id])).fetchone()
    return chunks if row else None


async def chunks_of(conn: Conn, file_id: UUID) -> list[Chunk]:
    rows = await (await conn.execute("SELECT chunk, first_line, lines, bytes FROM batch_file_chunks"
                                     " WHERE file_id = %s ORDER BY chunk", [file_id])).fetchall()
    return [Chunk(chunk=r["chunk"], first_line=r["first_line"], lines=r["lines"], bytes=r["bytes"]) for r in rows]


async def chunk_with_line(conn: Conn, file_id: UUID, *, line: int) -> Chunk | None:
    row = await (await conn.execute(
        "SELECT chunk, first_line, lines, bytes FROM batch_file_chunks WHERE file_id = %s AND first_line <= %s"
        " ORDER BY first_line DESC LIMIT 1", [file_id, line])).fetchone()
    return Chunk(chunk=row["chunk"], first_line=row["first_line"], lines=row["lines"], bytes=row["bytes"]) if row else None


@dataclass(frozen=True, kw_only=True)
class NewBatch:
    id: UUID
    tenant_id: str
    endpoint: str
    input_file_id: UUID
    completion_window: str
    metadata: dict[str, str] | None
    total: int
    expires_at: datetime
    api_key_id: UUID | None
    key_caps: dict[str, Any] | None


async def insert_batch(conn: Conn, batch: NewBatch) -> dict[str, Any]:
    row = await (await conn.execute(
        "INSERT INTO batches (id, tenant_id, endpoint, input_file_id, completion_window, metadata, status, total,"
        " expires_at, api_key_id, key_caps, in_progress_at) VALUES (%s, %s, %s, %s, %s, %s, 'in_progress', %s, %s,"
        " %s, %s, now()) RETURNING *",
        [batch.id, batch.tenant_id, batch.endpoint, batch.input_file_id, batch.completion_window,
         Jsonb(batch.metadata) if batch.metadata is not None else None, batch.total, batch.expires_at,
         batch.api_key_id, Jsonb(batch.key_caps) if batch.key_caps is not None else None])).fetchone()
    assert row is not None
    return dict(row)


async def read_batch(conn: Conn, batch_id: UUID, *, tenant_id: str | None = None) -> dict[str, Any] | None:
    clause = " AND tenant_id = %s" if tenant_id is not None else ""
    row = await (await conn.execute(f"SELECT * FROM batches WHERE id = %s{clause}",
                                    [batch_id] + ([tenant_id] if tenant_id is not None else []))).fetchone()
    return dict(row) if row else None


async def list_batches(conn: Conn, tenant_id: str, *, after: UUID | None, limit: int) -> list[dict[str, Any]]:
    """The tenant's batches, newest first, after the batch `after` (a page's last)."""
    rows = await (await conn.execute(
        "SELECT * FROM batches WHERE tenant_id = %(tenant)s AND (%(after)s::uuid IS NULL OR (created_at, id) <"
        " (SELECT created_at, id FROM batches WHERE id = %(after)s)) ORDER BY created_at DESC, id DESC"
        " LIMIT %(limit)s", {"tenant": tenant_id, "after": after, "limit": limit})).fetchall()
    return [dict(r) for r in rows]


async def request_counts(conn: Conn, batch_id: UUID) -> dict[str, int]:
    """Lines whose job delivered (completed), and those refused or whose job ended without
    images (failed); in flight: recorded lines whose job has not ended."""
    row = await (await conn.execute(
        "SELECT count(*) FILTER (WHERE j.state = ANY(%(delivered)s)) AS completed,"
        " count(*) FILTER (WHERE l.job_id IS NULL OR j.state = ANY(%(undelivered)s) OR j.id IS NULL) AS failed,"
        " count(*) FILTER (WHERE l.job_id IS NOT NULL AND j.state <> ALL(%(final)s)) AS in_flight"
        " FROM batch_lines l LEFT JOIN jobs j ON j.id = l.job_id WHERE l.batch_id = %(batch)s",
        {"batch": batch_id, "delivered": list(DELIVERED), "undelivered": list(UNDELIVERED),
         "final": list(DELIVERED + UNDELIVERED)})).fetchone()
    assert row is not None
    return {"completed": row["completed"], "failed": row["failed"], "in_flight": row["in_flight"]}


async def claim_batch(conn: Conn, lease_s: float) -> dict[str, Any] | None:
    """A batch with work to do whose lease is free, leased for `lease_s` (the longest untouched first)."""
    row = await (await conn.execute(
        "UPDATE batches SET lease_until = now() + make_interval(secs => %(lease)s) WHERE id = ("
        " SELECT id FROM batches WHERE status IN ('in_progress', 'cancelling') AND not_before <= now()"
        " AND (lease_until IS NULL OR lease_until < now()) ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING *", {"lease": lease_s})).fetchone()
    return dict(row) if row else None


async def next_due_s(conn: Conn) -> float | None:
    """Seconds until the first batch with work to do may be claimed (None: there is none)."""
    row = await (await conn.execute(
        "SELECT extract(epoch FROM min(greatest(not_before, lease_until)) - now())::float8 AS due_s FROM batches"
        " WHERE status IN ('in_progress', 'cancelling')")).fetchone()
    return row["due_s"] if row else None


async def release_batch(conn: Conn, batch_id: UUID, *, wait_s: float) -> None:
    """Free the lease; look again in `wait_s`."""
    await conn.execute("UPDATE batches SET lease_until = NULL, not_before = now() + make_interval(secs => %s)"
                       " WHERE id = %s", [wait_s, batch_id])


@dataclass(frozen=True, kw_only=True)
class LineRecord:
    """A line as recorded: its job and how its answer is asked for, or its refusal."""

    line: int
    custom_id: str
    job_id: UUID | None = None
    asked: dict[str, str] | None = None
    status_code: int | None = None
    error: dict[str, Any] | None = None


def _json(value: dict[str, Any] | None) -> Jsonb | None:
    return Jsonb(value) if value is not None else None


async def record_lines(conn: Conn, batch_id: UUID, *, lines: list[LineRecord], next_line: int) -> None:
    """Lines recorded (a line recorded before keeps its first record) and the next line to submit."""
    statement = inserted_if_absent("batch_lines", LINE_COLUMNS, rows=[
        (batch_id, r.line, r.custom_id, r.job_id, _json(r.asked), r.status_code, _json(r.error)) for r in lines])
    if statement is not None:
        await conn.execute(statement[0], statement[1])
    await conn.execute("UPDATE batches SET next_line = greatest(next_line, %s) WHERE id = %s", [next_line, batch_id])


async def set_status(conn: Conn, batch_id: UUID, *, status: str, at_column: str) -> None:
    assert at_column in ("finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at")
    await conn.execute(f"UPDATE batches SET status = %s, {at_column} = coalesce({at_column}, now()) WHERE id = %s",
                       [status, batch_id])


async def attach_results(conn: Conn, batch_id: UUID, *, output_file_id: UUID, error_file_id: UUID) -> None:
    await conn.execute("UPDATE batches SET output_file_id = %s, error_file_id = %s WHERE id = %s",
                       [output_file_id, error_file_id, batch_id])


async def unfinished_jobs(conn: Conn, batch_id: UUID, *, limit: int) -> list[UUID]:
    rows = await (await conn.execute(
        "SELECT l.job_id FROM batch_lines l JOIN jobs j ON j.id = l.job_id WHERE l.batch_id = %s"
        " AND j.state <> ALL(%s) LIMIT %s", [batch_id, list(DELIVERED + UNDELIVERED), limit])).fetchall()
    return [r["job_id"] for r in rows]


async def lines_page(conn: Conn, batch_id: UUID, *, after: int, limit: int) -> list[dict[str, Any]]:
    """Recorded lines after line `after`, in order, with their job's view."""
    rows = await (await conn.execute(
        "SELECT l.line, l.custom_id, l.job_id, l.asked, l.status_code, l.error, j.view FROM batch_lines l"
        " LEFT JOIN jobs j ON j.id = l.job_id AND j.erased_at IS NULL WHERE l.batch_id = %s AND l.line > %s"
        " ORDER BY l.line LIMIT %s", [batch_id, after, limit])).fetchall()
    return [dict(r) for r in rows]
