"""The rows read and written outside a batch's book: a tenant's balance, grants and journal
as its API shows them, its report policy, what the sweeper finds due, and the payments set
against their grants for reconciliation."""

from datetime import datetime

from psycopg.rows import DictRow

from services.common.db import Conn
from services.ledger.store.rows import row_of, rows_of


async def account_of(conn: Conn, tenant_id: str) -> DictRow | None:
    return await row_of(conn, "SELECT posted, pending, retry_tokens, report_policy, owed FROM accounts"
                              " WHERE tenant_id = %s", params=[tenant_id])


async def live_grants(conn: Conn, tenant_id: str) -> list[DictRow]:
    """The tenant's grants with credits left, in the order charges consume them."""
    return await rows_of(conn, "SELECT id, source, amount, remaining, expires_at FROM grants WHERE tenant_id = %s"
                               " AND remaining > 0 ORDER BY expires_at NULLS LAST, created_at", params=[tenant_id])


async def entries_before(conn: Conn, tenant_id: str, *, before: int, limit: int) -> list[DictRow]:
    """The tenant's journal lines with ids below `before`, newest first."""
    return await rows_of(conn, "SELECT id, kind, amount, debit_account, credit_account, transfer_id, grant_id,"
                               " reason, created_at FROM entries WHERE tenant_id = %s AND id < %s"
                               " ORDER BY id DESC LIMIT %s", params=[tenant_id, before, limit])


async def lock_report_policy(conn: Conn, tenant_id: str) -> str | None:
    """The tenant's report policy, its account locked until commit; None without an account."""
    row = await row_of(conn, "SELECT report_policy FROM accounts WHERE tenant_id = %s FOR UPDATE", params=[tenant_id])
    return None if row is None else str(row["report_policy"])


async def set_report_policy(conn: Conn, tenant_id: str, *, policy: str) -> None:
    await conn.execute("UPDATE accounts SET report_policy = %s WHERE tenant_id = %s", [policy, tenant_id])


async def due_for_sweep(conn: Conn, now: datetime, *, limit: int) -> list[DictRow]:
    """Holds past their timeout (tenant and job) and grants past their date (tenant only)."""
    return await rows_of(conn, "SELECT tenant_id, job_id FROM transfers WHERE state = 'pending' AND timeout_at <= %s"
                               " UNION ALL SELECT tenant_id, NULL FROM grants WHERE remaining > 0"
                               " AND expires_at <= %s LIMIT %s", params=[now, now, limit])


async def payments_and_grants(conn: Conn) -> list[DictRow]:
    """Every payment beside the grant it made, and every payment grant beside its payment
    (either side may be missing), in the order the payments came."""
    return await rows_of(conn, "SELECT p.event_id, COALESCE(p.tenant_id, g.tenant_id) AS tenant_id, p.credits,"
                               " p.amount_minor, p.currency, p.credits_reclaimed, g.id AS grant_id,"
                               " g.amount AS granted FROM payments p"
                               " FULL JOIN (SELECT * FROM grants WHERE source = 'payment') g"
                               " ON g.payment_id = p.event_id ORDER BY p.received_at", params=[])
