"""The `data_keys` table: each job's data key, wrapped under the key-encryption key its row
names (`services/ingest/data_keys.py` makes, wraps and opens them; no KMS call happens here)."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow

from services.common.db import Conn

INSERT_DATA_KEY = "INSERT INTO data_keys (job_id, tenant_id, key, kek_id) VALUES (%s, %s, %s, %s)"


@dataclass(frozen=True, kw_only=True)
class WrappedDataKey:
    """A job's data key as its row stores it: wrapped under the KEK named (None: in clear)."""

    job_id: UUID
    tenant_id: str
    wrapped: bytes
    kek_id: str | None

    def row(self) -> tuple[UUID, str, bytes, str | None]:
        return self.job_id, self.tenant_id, self.wrapped, self.kek_id


async def insert_data_key(conn: Conn, key: WrappedDataKey) -> None:
    await conn.execute(INSERT_DATA_KEY, list(key.row()))


async def read_data_key(conn: Conn, job_id: UUID) -> tuple[bytes, str | None] | None:
    """The job's wrapped key and the KEK it was wrapped under, if the job still has one."""
    row = await (await conn.execute("SELECT key, kek_id FROM data_keys WHERE job_id = %s", [job_id])).fetchone()
    return (bytes(row["key"]), row["kek_id"]) if row else None


def read_every_data_key(conn: psycopg.Connection[TupleRow], schema: str) -> list[tuple[UUID, bytes, str | None]]:
    """Every job's wrapped key and KEK, for a replay run outside the service (a synchronous connection)."""
    return [(job_id, bytes(key), kek_id)
            for job_id, key, kek_id in conn.execute(f'SELECT job_id, key, kek_id FROM "{schema}".data_keys')]


async def delete_data_key(conn: Conn, job_id: UUID) -> bool:
    cur = await conn.execute("DELETE FROM data_keys WHERE job_id = %s", [job_id])
    return cur.rowcount == 1


async def keys_not_under(conn: Conn, kek_id: str, *, batch: int) -> list[dict[str, Any]]:
    """Up to `batch` keys wrapped under another KEK than `kek_id` (or in clear), locked for the
    transaction; rows another transaction holds are skipped."""
    return await (await conn.execute(
        "SELECT job_id, key, kek_id FROM data_keys WHERE kek_id IS DISTINCT FROM %s"
        " LIMIT %s FOR UPDATE SKIP LOCKED", [kek_id, batch])).fetchall()


async def rewrite_data_key(conn: Conn, job_id: UUID, *, wrapped: bytes, kek_id: str | None) -> None:
    await conn.execute("UPDATE data_keys SET key = %s, kek_id = %s WHERE job_id = %s", [wrapped, kek_id, job_id])


async def wrapped_keys_by_kek(conn: psycopg.AsyncConnection[TupleRow], schema: str) -> list[tuple[str, int]]:
    """How many keys each KEK wraps ('(clear)' for those stored before wrapping)."""
    rows = await (await conn.execute(
        f'SELECT coalesce(kek_id, \'(clear)\'), count(*) FROM "{schema}".data_keys GROUP BY 1 ORDER BY 1')).fetchall()
    return [(str(kek_id), int(count)) for kek_id, count in rows]
