"""The jobs' data keys (`services.common.sealing`), kept in ingest's `data_keys` table: one
is made with each job, read by ingest itself and, over the internal API
(`routes/internal.py`), by the services that need the job's content in clear; an erasure
deletes it."""

from uuid import UUID

import psycopg

from services.common.sealing import new_data_key

__all__ = ["destroy", "insert", "key_of", "keys_of", "new_data_key"]


async def insert(conn: psycopg.AsyncConnection, job_id: UUID, tenant_id: str, key: bytes) -> None:
    await conn.execute("INSERT INTO data_keys (job_id, tenant_id, key) VALUES (%s, %s, %s)", [job_id, tenant_id, key])


async def key_of(conn: psycopg.AsyncConnection, job_id: UUID) -> bytes | None:
    row = await (await conn.execute("SELECT key FROM data_keys WHERE job_id = %s", [job_id])).fetchone()
    return bytes(row["key"]) if row else None


def keys_of(conn: psycopg.Connection, schema: str) -> dict[UUID, bytes]:
    """Every job's key, for a replay run outside the service (a synchronous connection)."""
    return {row[0]: bytes(row[1]) for row in conn.execute(f'SELECT job_id, key FROM "{schema}".data_keys')}


async def destroy(conn: psycopg.AsyncConnection, job_id: UUID) -> bool:
    cur = await conn.execute("DELETE FROM data_keys WHERE job_id = %s", [job_id])
    return cur.rowcount == 1
