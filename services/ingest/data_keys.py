"""The jobs' data keys (`services.common.sealing`), kept in ingest's `data_keys` table,
each wrapped under a key-encryption key (`key_encryption.py`): one is made with each job,
read by ingest itself and, over the internal API (`routes/internal.py`), by the services
that need the job's content in clear; an erasure deletes it."""

import asyncio
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from services.common.sealing import new_data_key
from services.ingest.key_encryption import KMS, Keyring, keyring_of

__all__ = ["destroy", "insert", "wrapped", "key_of", "keys_of", "new_data_key", "rewrap", "rewrap_all", "status"]


async def _off_loop(keyring: Keyring, kek_id: str | None, function, *args):
    """KMS is a network call (boto3 blocks); a local KEK is a few microseconds of AES."""
    if (kek_id or keyring.active or "").startswith(KMS):
        return await asyncio.to_thread(function, *args)
    return function(*args)


async def wrapped(job_id: UUID, key: bytes, keyring: Keyring) -> tuple[str, bytes]:
    """The job's key wrapped under the keyring's active KEK: (KEK id, wrapped key)."""
    return await _off_loop(keyring, None, keyring.wrap, key, job_id)


async def insert(conn: psycopg.AsyncConnection, job_id: UUID, tenant_id: str, key: bytes, keyring: Keyring) -> None:
    kek_id, wrapped_key = await wrapped(job_id, key, keyring)
    await conn.execute("INSERT INTO data_keys (job_id, tenant_id, key, kek_id) VALUES (%s, %s, %s, %s)",
                       [job_id, tenant_id, wrapped_key, kek_id])


async def key_of(conn: psycopg.AsyncConnection, job_id: UUID, keyring: Keyring) -> bytes | None:
    row = await (await conn.execute("SELECT key, kek_id FROM data_keys WHERE job_id = %s", [job_id])).fetchone()
    if row is None:
        return None
    return await _off_loop(keyring, row["kek_id"], keyring.unwrap, row["kek_id"], bytes(row["key"]), job_id)


def keys_of(conn: psycopg.Connection, schema: str, keyring: Keyring) -> dict[UUID, bytes]:
    """Every job's key, for a replay run outside the service (a synchronous connection)."""
    rows = conn.execute(f'SELECT job_id, key, kek_id FROM "{schema}".data_keys')
    return {job_id: keyring.unwrap(kek_id, bytes(key), job_id) for job_id, key, kek_id in rows}


async def destroy(conn: psycopg.AsyncConnection, job_id: UUID) -> bool:
    cur = await conn.execute("DELETE FROM data_keys WHERE job_id = %s", [job_id])
    return cur.rowcount == 1


async def rewrap(conn: psycopg.AsyncConnection, keyring: Keyring, batch: int = 200) -> int:
    """Wrap again, under the active KEK, up to `batch` keys wrapped under another one (or
    stored in clear), in one transaction that locks only those rows (ingest keeps serving);
    returns how many. Call until it returns 0."""
    active = keyring.active
    if active is None:
        raise ValueError("no key-encryption key is configured: set GENLINE_DATA_KEY_KEK_FILE or _KMS_KEY_ID")
    async with conn.transaction():
        rows = await (await conn.execute(
            "SELECT job_id, key, kek_id FROM data_keys WHERE kek_id IS DISTINCT FROM %s"
            " LIMIT %s FOR UPDATE SKIP LOCKED", [active, batch])).fetchall()
        for row in rows:
            key = await _off_loop(keyring, row["kek_id"], keyring.unwrap, row["kek_id"], bytes(row["key"]), row["job_id"])
            kek_id, wrapped = await _off_loop(keyring, None, keyring.wrap, key, row["job_id"])
            await conn.execute("UPDATE data_keys SET key = %s, kek_id = %s WHERE job_id = %s",
                               [wrapped, kek_id, row["job_id"]])
    return len(rows)


# ---- `genline data-keys rewrap | status` (services/ingest/cli.py) ----------------------


def schema_of(settings) -> str:
    return settings.schema_name or "ingest"


async def rewrap_all(settings, out=print) -> int:
    keyring, total = keyring_of(settings), 0
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True,
                                                     row_factory=dict_row) as conn:
        await conn.execute(f'SET search_path TO "{schema_of(settings)}"')
        while done := await rewrap(conn, keyring):
            total += done
    out(f"{total} data keys wrapped again under {keyring.active}")
    return total


async def status(settings, out=print) -> dict:
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        rows = await (await conn.execute(
            f'SELECT coalesce(kek_id, \'(clear)\'), count(*) FROM "{schema_of(settings)}".data_keys'
            " GROUP BY 1 ORDER BY 1")).fetchall()
    for kek_id, count in rows:
        out(f"{kek_id}\t{count}")
    return dict(rows)
