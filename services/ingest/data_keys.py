"""The jobs' data keys (`services.common.sealing`), kept in ingest's `data_keys` table,
each wrapped under a key-encryption key (`key_encryption.py`): one is made with each job,
read by ingest itself (to show a job's prompt to its tenant: the read model keeps it sealed)
and, over the internal API (`routes/internal.py`), by the services that need the job's
content in clear; an erasure deletes it."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import TupleRow, dict_row

from services.common.db import Conn
from services.common.sealing import new_data_key
from services.ingest.key_encryption import KMS, Keyring, keyring_of
from services.ingest.store import data_keys as store

if TYPE_CHECKING:
    from services.ingest.settings import IngestSettings

T = TypeVar("T")

__all__ = ["JobKey", "destroy", "insert", "job_key", "wrapped", "key_of", "keys_of", "new_data_key", "rewrap",
           "rewrap_all", "status"]


async def _off_loop(keyring: Keyring, kek_id: str | None, *, work: Callable[[], T]) -> T:
    """KMS is a network call (boto3 blocks); a local KEK is a few microseconds of AES."""
    if (kek_id or keyring.active or "").startswith(KMS):
        return await asyncio.to_thread(work)
    return work()


async def wrapped(job_id: UUID, key: bytes, *, keyring: Keyring) -> "JobKey":
    """The job's key wrapped under the keyring's active KEK."""
    kek_id, wrapped_key = await _off_loop(keyring, None, work=partial(keyring.wrap, key, job_id))
    return JobKey(job_id=job_id, key=key, kek_id=kek_id, wrapped=wrapped_key)


@dataclass(frozen=True, kw_only=True)
class JobKey:
    """A new job's id and data key, and the key wrapped for its row (under `kek_id`)."""

    job_id: UUID
    key: bytes = field(repr=False)
    kek_id: str | None
    wrapped: bytes = field(repr=False)


async def job_key(keyring: Keyring) -> JobKey:
    """A new job's id and data key, wrapped. Call it before the transaction that records the
    job: wrapping is a network call under KMS, and that transaction holds the tenant's row, so
    every submission of the tenant would wait on KMS."""
    return await wrapped(uuid4(), new_data_key(), keyring=keyring)


async def insert(conn: Conn, tenant_id: str, *, key: JobKey) -> None:
    """Store a job's wrapped key outside a submission (which writes its own with the job)."""
    await store.insert_data_key(conn, store.WrappedDataKey(job_id=key.job_id, tenant_id=tenant_id, wrapped=key.wrapped, kek_id=key.kek_id))


async def key_of(conn: Conn, job_id: UUID, *, keyring: Keyring) -> bytes | None:
    stored = await store.read_data_key(conn, job_id)
    if stored is None:
        return None
    wrapped_key, kek_id = stored
    return await _off_loop(keyring, kek_id, work=partial(keyring.unwrap, kek_id, wrapped_key, job_id=job_id))


def keys_of(conn: psycopg.Connection[TupleRow], schema: str, *, keyring: Keyring) -> dict[UUID, bytes]:
    """Every job's key, for a replay run outside the service (a synchronous connection)."""
    return {job_id: keyring.unwrap(kek_id, key, job_id=job_id) for job_id, key, kek_id in store.read_every_data_key(conn, schema)}


async def destroy(conn: Conn, job_id: UUID) -> bool:
    return await store.delete_data_key(conn, job_id)


async def rewrap(conn: Conn, keyring: Keyring, *, batch: int = 200) -> int:
    """Wrap again, under the active KEK, up to `batch` keys wrapped under another one (or
    stored in clear), in one transaction that locks only those rows (ingest keeps serving);
    returns how many. Call until it returns 0."""
    active = keyring.active
    if active is None:
        raise ValueError("no key-encryption key is configured: set GENLINE_DATA_KEY_KEK_FILE or _KMS_KEY_ID")
    async with conn.transaction():
        rows = await store.keys_not_under(conn, active, batch=batch)
        for row in rows:
            key = await _off_loop(keyring, row["kek_id"],
                                  work=partial(keyring.unwrap, row["kek_id"], bytes(row["key"]), job_id=row["job_id"]))
            again = await wrapped(row["job_id"], key, keyring=keyring)
            await store.rewrite_data_key(conn, again.job_id, wrapped=again.wrapped, kek_id=again.kek_id)
    return len(rows)


# ---- `genline data-keys rewrap | status` (services/ingest/cli.py) ----------------------


def schema_of(settings: "IngestSettings") -> str:
    return settings.schema_name or "ingest"


async def rewrap_all(settings: "IngestSettings", out: Callable[[str], None] = print) -> int:
    keyring, total = keyring_of(settings), 0
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True,
                                                     row_factory=dict_row) as conn:
        await conn.execute(f'SET search_path TO "{schema_of(settings)}"')
        while done := await rewrap(conn, keyring):
            total += done
    out(f"{total} data keys wrapped again under {keyring.active}")
    return total


async def status(settings: "IngestSettings", out: Callable[[str], None] = print) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        rows = await store.wrapped_keys_by_kek(conn, schema_of(settings))
    for kek_id, count in rows:
        out(f"{kek_id}\t{count}")
    return dict(rows)
