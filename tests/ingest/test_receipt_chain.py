"""A tenant's receipt chain against a real PostgreSQL: its head kept on the tenant's row, read
by the lock that orders the signers, and brought there from the receipts of a database made
before it was kept."""

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from services.common.db import COMMON_MIGRATIONS, migration_files, together
from services.ingest.jobs.domain import submitted_view
from services.ingest.receipts.document import ReceiptSigner
from services.ingest.receipts.issuing import Issuance, issue
from services.ingest.signing_key import load_signing_key, new_signing_key_text
from tests.ingest.test_read_model import SPEC
from tests.polling import eventually

HEAD = "0014_receipt_chain_head"


@pytest.fixture
async def schema(endpoints):
    """An ingest schema migrated up to, not including, the chain head's migration."""
    name = f"chain_{uuid.uuid4().hex[:8]}"
    async with await connect(endpoints, name) as conn:
        for package in (COMMON_MIGRATIONS, "services.ingest"):
            for version, sql in migration_files(package):
                if package == "services.ingest" and version >= HEAD:
                    break
                await conn.execute(sql)
        yield name
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')


async def connect(endpoints, schema: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True,
                                                 row_factory=psycopg.rows.dict_row)
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(f'SET search_path TO "{schema}"')
    return conn


async def chain_head_migration(conn: psycopg.AsyncConnection) -> None:
    [sql] = [sql for version, sql in migration_files("services.ingest") if version == HEAD]
    await conn.execute(sql)


async def add_receipts(conn: psycopg.AsyncConnection, tenant: str, sequences: list[int]) -> None:
    await conn.execute(
        "INSERT INTO receipts (job_id, tenant_id, sequence, sha256, document, issued_at)"
        " SELECT gen_random_uuid(), %s, s, 'sha-' || s, '{}', now() FROM unnest(%s::bigint[]) AS s", [tenant, sequences])


async def heads(conn: psycopg.AsyncConnection) -> dict[str, tuple[int, str | None]]:
    rows = await (await conn.execute("SELECT id, receipt_sequence, receipt_sha256 FROM tenants")).fetchall()
    return {row["id"]: (row["receipt_sequence"], row["receipt_sha256"]) for row in rows}


async def test_the_migration_brings_each_chain_s_head_and_the_trigger_keeps_it(endpoints, schema):
    async with await connect(endpoints, schema) as conn:
        for tenant in ("a", "b", "c"):
            await conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", [tenant, tenant])
        await add_receipts(conn, "a", [1, 2, 3])
        await add_receipts(conn, "b", [1])
        await chain_head_migration(conn)
        assert await heads(conn) == {"a": (3, "sha-3"), "b": (1, "sha-1"), "c": (0, None)}
        await add_receipts(conn, "a", [5, 4])  # several in one statement, in any order
        await add_receipts(conn, "c", [1])
        assert await heads(conn) == {"a": (5, "sha-5"), "b": (1, "sha-1"), "c": (1, "sha-1")}


async def test_a_signer_that_waited_for_the_tenant_chains_after_what_the_one_before_committed(endpoints, schema):
    """Two transactions sign receipts of one tenant; the second waits at the tenant's lock
    and must then see the head the first committed, not the one its statement began with."""
    signer = ReceiptSigner(load_signing_key(new_signing_key_text()))
    now = datetime.now(UTC)

    def view():
        return submitted_view(SPEC.model_copy(update={"job_id": uuid.uuid4(), "tenant_id": "t"}))

    async with await connect(endpoints, schema) as first, await connect(endpoints, schema) as second:
        await chain_head_migration(first)
        await first.execute("INSERT INTO tenants (id, name) VALUES ('t', 't')")
        async with first.transaction():
            issued_first, written = await issue(first, [view(), view()], issuance=Issuance(signer, now))
            await together(first, [written])

            async def sign_second():
                async with second.transaction():
                    issued, written = await issue(second, [view()], issuance=Issuance(signer, now))
                    await together(second, [written])
                    return issued
            signing = asyncio.create_task(sign_second())

            async def waiting() -> bool:
                [row] = await (await first.execute("SELECT count(*) AS n FROM pg_locks WHERE pid = %s AND NOT granted",
                                                   [second.info.backend_pid])).fetchall()
                return row["n"] > 0
            await eventually(waiting, 30, "the second signer waits for the tenant")
        issued_second = await signing
        rows = await (await first.execute("SELECT sequence, sha256, document FROM receipts ORDER BY sequence")).fetchall()
    assert [row["sequence"] for row in rows] == [1, 2, 3]
    assert [row["sha256"] for row in rows] == [*issued_first.values(), *issued_second.values()]
    assert [row["document"]["receipt"]["previous_sha256"] for row in rows] == [None, rows[0]["sha256"], rows[1]["sha256"]]
