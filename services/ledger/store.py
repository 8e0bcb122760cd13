"""Loading the slice of ledger state a batch touches (locked), and writing back what the
batch changed, in a few pipelined statements whatever the batch size."""

from collections.abc import Iterable
from uuid import UUID

import psycopg

from services.ledger.domain import Account, Book, Grant, Transfer

TRANSFER_COLUMNS = ("id", "job_id", "tenant_id", "amount", "unit_price", "images", "tokens_held", "tier",
                    "pricebook_version", "max_provider_spend", "timeout_at", "state", "charged", "delivered",
                    "settled_at")
GRANT_COLUMNS = ("id", "tenant_id", "source", "amount", "remaining", "expires_at", "created_at", "rollover_days",
                 "payment_id")


async def _rows(conn: psycopg.AsyncConnection, sql: str, params: list) -> list[dict]:
    return await (await conn.execute(sql, params)).fetchall()


async def load_book(conn: psycopg.AsyncConnection, book: Book, tenant_ids: Iterable[str],
                    job_ids: Iterable[UUID]) -> Book:
    """Lock the accounts (in one order, so concurrent batches cannot deadlock), then the
    transfers and grants below them."""
    tenants, jobs = sorted(set(tenant_ids)), list(set(job_ids))
    for row in await _rows(conn, "SELECT tenant_id, posted, pending, retry_tokens, report_policy FROM accounts"
                                 " WHERE tenant_id = ANY(%s) ORDER BY tenant_id FOR UPDATE", [tenants]):
        book.accounts[row["tenant_id"]] = Account(**row)
    if jobs:
        for row in await _rows(conn, f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers"
                                     " WHERE job_id = ANY(%s) FOR UPDATE", [jobs]):
            book.transfers[row["job_id"]] = Transfer(**row)
        for row in await _rows(conn, "SELECT job_id, sum(cost_micro_usd)::bigint AS cost FROM provider_costs"
                                     " WHERE job_id = ANY(%s) GROUP BY job_id", [jobs]):
            book.provider_costs[row["job_id"]] = row["cost"]
        for row in await _rows(conn, "SELECT job_id, n FROM reports WHERE job_id = ANY(%s)", [jobs]):
            book.reported.add((row["job_id"], row["n"]))
    for row in await _rows(conn, f"SELECT {', '.join(GRANT_COLUMNS)} FROM grants"
                                 " WHERE tenant_id = ANY(%s) AND remaining > 0 FOR UPDATE", [tenants]):
        book.grants.setdefault(row["tenant_id"], []).append(Grant(**row))
    return book


async def write_book(conn: psycopg.AsyncConnection, book: Book) -> None:
    async with conn.cursor() as cur:
        accounts = [book.accounts[t] for t in sorted(book.changed_accounts | book.new_accounts)]
        await cur.executemany(
            "INSERT INTO accounts (tenant_id, posted, pending, retry_tokens) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET posted = EXCLUDED.posted, pending = EXCLUDED.pending,"
            " retry_tokens = EXCLUDED.retry_tokens, updated_at = now()",
            [(a.tenant_id, a.posted, a.pending, a.retry_tokens) for a in accounts],
        )
        await cur.executemany(
            f"INSERT INTO grants ({', '.join(GRANT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(GRANT_COLUMNS))})",
            [tuple(getattr(g, c) for c in GRANT_COLUMNS) for g in book.new_grants],
        )
        await cur.executemany("UPDATE grants SET remaining = %s WHERE id = %s",
                              [(g.remaining, g.id) for g in book.changed_grants.values()])
        await cur.executemany(
            f"INSERT INTO transfers ({', '.join(TRANSFER_COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(TRANSFER_COLUMNS))})",
            [tuple(getattr(t, c) for c in TRANSFER_COLUMNS) for t in book.new_transfers],
        )
        await cur.executemany(
            "UPDATE transfers SET state = %s, charged = %s, delivered = %s, settled_at = %s WHERE id = %s",
            [(t.state, t.charged, t.delivered, t.settled_at, t.id) for t in book.changed_transfers],
        )
        await cur.executemany(
            "INSERT INTO entries (tenant_id, transfer_id, grant_id, kind, amount, debit_account, credit_account,"
            " reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(e.tenant_id, e.transfer_id, e.grant_id, e.kind, e.amount, e.debit_account, e.credit_account, e.reason)
             for e in book.entries],
        )
        await cur.executemany(
            "INSERT INTO provider_costs (job_id, attempt, provider, cost_micro_usd) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING", book.new_costs,
        )
        await cur.executemany(
            "INSERT INTO reports (job_id, n, tenant_id, outcome, amount) VALUES (%s, %s, %s, %s, %s)",
            book.new_reports,
        )
