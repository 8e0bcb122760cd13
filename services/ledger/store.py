"""Loading the slice of ledger state a batch touches (locked), and writing back what the
batch changed: two statements, whatever the batch size and the tables it touches."""

from collections.abc import Iterable
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from services.common.bus import InboxClaim, TransientConflict
from services.common.db import Statement, added, as_arrays, inserted, together, typed_arrays, updated
from services.ledger.domain import Account, Book, Grant, Transfer

TRANSFER_COLUMNS = {"id": "uuid", "job_id": "uuid", "tenant_id": "text", "amount": "bigint", "unit_price": "bigint",
                    "images": "int", "tokens_held": "int", "tier": "text", "pricebook_version": "text",
                    "max_provider_spend": "bigint", "timeout_at": "timestamptz", "state": "text",
                    "charged": "bigint", "delivered": "int", "settled_at": "timestamptz", "api_key_id": "uuid",
                    "spent_on": "date", "second_price": "bigint", "clip_seconds": "int", "delivered_seconds": "int"}
SETTLED_COLUMNS = {"id": "uuid", "state": "text", "charged": "bigint", "delivered": "int",
                   "settled_at": "timestamptz", "delivered_seconds": "int"}
GRANT_COLUMNS = {"id": "uuid", "tenant_id": "text", "source": "text", "amount": "bigint", "remaining": "bigint",
                 "expires_at": "timestamptz", "created_at": "timestamptz", "rollover_days": "int",
                 "payment_id": "text"}
ENTRY_COLUMNS = {"tenant_id": "text", "transfer_id": "uuid", "grant_id": "uuid", "kind": "text", "amount": "bigint",
                 "debit_account": "text", "credit_account": "text", "reason": "text"}
ACCOUNT_COLUMNS = {"tenant_id": "text", "posted": "bigint", "pending": "bigint", "retry_tokens": "int"}
COST_COLUMNS = {"job_id": "uuid", "attempt": "int", "provider": "text", "cost_micro_usd": "bigint"}
CLOSED_COLUMNS = {"job_id": "uuid", "tenant_id": "text", "outcome": "text"}
KEY_SPEND_COLUMNS = {"api_key_id": "uuid", "period": "text", "starts_on": "date", "tenant_id": "text",
                     "spent": "bigint", "cap": "bigint", "refused": "boolean"}
# A batch's holds on a key's spend, added to what is there with the cap in force; the CHECK
# then refuses a sum beyond it. A refusal alone adds nothing and marks the period refused.
KEY_SPEND_HELD = (
    "INSERT INTO key_spend (api_key_id, period, starts_on, tenant_id, spent, cap, refused)"
    " SELECT * FROM unnest({arrays}) ON CONFLICT (api_key_id, period, starts_on)"
    " DO UPDATE SET spent = key_spend.spent + EXCLUDED.spent,"
    " cap = CASE WHEN EXCLUDED.spent > 0 THEN EXCLUDED.cap ELSE key_spend.cap END,"
    " refused = key_spend.refused OR EXCLUDED.refused")
# What a batch's settlements give back (a negative change): the row exists since the hold,
# and its cap stays as it is. (An insert's CHECKs see its own row before ON CONFLICT does.)
KEY_SPEND_RELEASED = (
    "UPDATE key_spend AS t SET spent = t.spent + u.spent, refused = t.refused OR u.refused FROM unnest({arrays})"
    " AS u(api_key_id, period, starts_on, tenant_id, spent, cap, refused)"
    " WHERE t.api_key_id = u.api_key_id AND t.period = u.period AND t.starts_on = u.starts_on")
REPORT_COLUMNS = {"job_id": "uuid", "n": "int", "tenant_id": "text", "outcome": "text", "amount": "bigint"}


async def _rows(conn: psycopg.AsyncConnection, sql: str, params: list) -> list[dict]:
    return await (await conn.execute(sql, params)).fetchall()


async def load_book(conn: psycopg.AsyncConnection, book: Book, tenant_ids: Iterable[str],
                    job_ids: Iterable[UUID], *, costs_of: Iterable[UUID] | None = None,
                    reports_of: Iterable[UUID] | None = None) -> Book:
    """The balances of `tenant_ids` (read_balances) and what the book knows of `job_ids`
    (read_jobs)."""
    await read_balances(conn, book, tenant_ids)
    return await read_jobs(conn, book, job_ids, costs_of=costs_of, reports_of=reports_of)


async def read_balances(conn: psycopg.AsyncConnection, book: Book, tenant_ids: Iterable[str],
                        claim: InboxClaim | None = None) -> Book:
    """Accounts and grants are read without locks, together (their changes are written as
    deltas that the database checks), so the statement can come first in a transaction and
    carry the batch's claim on the inbox (`claim`, then told which events are fresh)."""
    tenants = sorted(set(tenant_ids))
    if claim is None:
        rows = await _rows(conn, BALANCES, [tenants, tenants])
    else:
        rows = await _rows(conn, CLAIM_AND_BALANCES, [*claim.params, tenants, tenants])
        claim.fresh(row["source"] for row in rows if row["kind"] == "claimed")
    for row in rows:
        kind = row.pop("kind")
        if kind == "grant":
            grant = Grant(**{column: row[column] for column in GRANT_COLUMNS})
            book.grants.setdefault(grant.tenant_id, []).append(grant)
            book.loaded_grants[grant.id] = grant.remaining
        elif kind == "account":
            book.accounts[row["tenant_id"]] = Account(**{column: row[column] for column in ACCOUNT_FIELDS})
            book.loaded_accounts[row["tenant_id"]] = (row["posted"], row["pending"], row["retry_tokens"])
    return book


async def read_jobs(conn: psycopg.AsyncConnection, book: Book, job_ids: Iterable[UUID], *,
                    costs_of: Iterable[UUID] | None = None, reports_of: Iterable[UUID] | None = None) -> Book:
    """A job's transfer is locked, so it settles once; what the statements after the lock read
    (closed jobs, costs, reports) is then what the lock's last holder committed. Provider
    costs and reports are read for `costs_of` and `reports_of` (by default every job): a
    batch that settles nothing needs no costs, one that reports nothing no reports."""
    jobs = list(set(job_ids))
    costs = jobs if costs_of is None else list(set(costs_of))
    reports = jobs if reports_of is None else list(set(reports_of))
    if jobs:
        for row in await _rows(conn, f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers"
                                     " WHERE job_id = ANY(%b) FOR UPDATE", [jobs]):
            book.transfers[row["job_id"]] = Transfer(**row)
    if not (jobs or costs or reports):
        return book
    # The reads after the lock, in one statement: rows of one shape, a kind each.
    for row in await _rows(conn, AFTER_THE_LOCK, [jobs, costs, reports]):
        if row["kind"] == "closed":
            book.closed.add(row["job_id"])
        elif row["kind"] == "cost":
            book.provider_costs[row["job_id"]] = row["amount"]
        else:
            book.reported.add((row["job_id"], row["amount"]))
    return book


AFTER_THE_LOCK = (
    "SELECT 'closed' AS kind, job_id, NULL::bigint AS amount FROM closed_jobs WHERE job_id = ANY(%b)"
    " UNION ALL SELECT 'cost', job_id, sum(cost_micro_usd)::bigint FROM provider_costs WHERE job_id = ANY(%b)"
    "  GROUP BY job_id"
    " UNION ALL SELECT 'report', job_id, n FROM reports WHERE job_id = ANY(%b)")


# The tenants' accounts and their grants with credits left, in one statement: rows of one
# shape, each a balance (kind 'account') or a grant (kind 'grant'), the other's columns null.
ACCOUNT_FIELDS = ("tenant_id", "posted", "pending", "retry_tokens", "report_policy", "owed")
BALANCES = (
    "SELECT 'account' AS kind, tenant_id, posted, pending, retry_tokens, report_policy, owed, NULL::uuid AS id,"
    " NULL::text AS source, NULL::bigint AS amount, NULL::bigint AS remaining, NULL::timestamptz AS expires_at,"
    " NULL::timestamptz AS created_at, NULL::int AS rollover_days, NULL::text AS payment_id"
    " FROM accounts WHERE tenant_id = ANY(%b)"
    " UNION ALL SELECT 'grant', tenant_id, NULL, NULL, NULL, NULL, NULL, id, source, amount, remaining, expires_at,"
    " created_at, rollover_days, payment_id FROM grants WHERE tenant_id = ANY(%b) AND remaining > 0")
# The same, with the batch's claim on the inbox: a row of kind 'claimed' for each event id
# the claim inserted (in `source`).
CLAIM_AND_BALANCES = (
    f"WITH {InboxClaim.CLAIMED} {BALANCES} UNION ALL SELECT 'claimed', NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " event_id,"
    " NULL, NULL, NULL, NULL, NULL, NULL FROM claimed")


def _values(obj, columns: dict[str, str]) -> tuple:
    return tuple(getattr(obj, c) for c in columns)


class LostRace(TransientConflict):
    """A concurrent batch changed the same balances first and the database refused the sum
    (or the same job was reserved twice); the batch is rolled back and applied again."""


RACES = (psycopg.errors.CheckViolation, psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected)


async def write_book(conn: psycopg.AsyncConnection, book: Book, published: Statement | None = None) -> None:
    try:
        await _write_book(conn, book, published)
    except RACES as exc:
        raise LostRace(str(exc)) from exc


async def _write_book(conn: psycopg.AsyncConnection, book: Book, published: Statement | None) -> None:
    """Two statements: the new rows, each table's in a CTE of one, with the outbox rows of
    what the batch `published` (Publish.statement); then the changes to rows that exist
    (settled transfers, grants drawn on, balances), which may include rows the first
    inserted. The rows concurrent batches share (balances, grants) are written last, so
    their locks are held for the shortest time."""
    await together(conn, [
        published,
        inserted("accounts", ACCOUNT_COLUMNS, [(t, 0, 0, 0) for t in sorted(book.new_accounts)],
                 "ON CONFLICT (tenant_id) DO NOTHING"),
        inserted("grants", GRANT_COLUMNS, [_values(g, GRANT_COLUMNS) for g in book.new_grants]),
        inserted("transfers", TRANSFER_COLUMNS, [_values(t, TRANSFER_COLUMNS) for t in book.new_transfers]),
        inserted("entries", ENTRY_COLUMNS, [_values(e, ENTRY_COLUMNS) for e in book.entries]),
        inserted("provider_costs", COST_COLUMNS, book.new_costs, "ON CONFLICT DO NOTHING"),
        inserted("reports", REPORT_COLUMNS, book.new_reports),
        inserted("closed_jobs", CLOSED_COLUMNS, book.new_closed, "ON CONFLICT DO NOTHING")])
    await together(conn, [
        updated("transfers", "id", SETTLED_COLUMNS, [_values(t, SETTLED_COLUMNS) for t in book.changed_transfers]),
        added("grants", "id", {"id": "uuid", "remaining": "bigint"}, [(gid, -taken) for gid, taken in book.grants_taken()]),
        *key_spend_written(book.key_spend.changes()),
        added("accounts", "tenant_id", ACCOUNT_COLUMNS, book.account_deltas())])
    if book.owed_changes:  # only payments change debts, never a job's batch
        await together(conn, [added("accounts", "tenant_id", {"tenant_id": "text", "owed": "bigint"},
                                    sorted(book.owed_changes.items()))])


def key_spend_written(rows: list[tuple]) -> list[Statement | None]:
    """The statements that write a batch's net change to each key's spend rows (one each)."""
    held, released = [r for r in rows if r[4] >= 0], [r for r in rows if r[4] < 0]
    arrays = typed_arrays(KEY_SPEND_COLUMNS)
    return [(KEY_SPEND_HELD.format(arrays=arrays), as_arrays(held)) if held else None,
            (KEY_SPEND_RELEASED.format(arrays=arrays), as_arrays(released)) if released else None]


async def read_key_spend(conn: psycopg.AsyncConnection, book: Book, api_key_ids: Iterable[UUID],
                         starts: Iterable) -> Book:
    """What `api_key_ids` spent in the periods starting on `starts` (unlocked: the batch's
    holds are written as deltas that the database checks against the cap)."""
    keys, days = sorted(set(api_key_ids)), sorted(set(starts))
    if keys:
        for row in await _rows(conn, "SELECT api_key_id, period, starts_on, spent FROM key_spend"
                                     " WHERE api_key_id = ANY(%b) AND starts_on = ANY(%b)", [keys, days]):
            book.key_spend.loaded[(row["api_key_id"], row["period"], row["starts_on"])] = row["spent"]
    return book


async def key_spend_of(conn: psycopg.AsyncConnection, tenant_id: str, api_key_ids: list[UUID], day,
                       month) -> list[dict]:
    """Each of the tenant's keys' spend today and this month, as the ledger's API shows it."""
    return await _rows(conn, "SELECT api_key_id, period, spent FROM key_spend WHERE tenant_id = %s"
                             " AND api_key_id = ANY(%b)"
                             " AND ((period = 'day' AND starts_on = %s) OR (period = 'month' AND starts_on = %s))",
                       [tenant_id, api_key_ids, day, month])


# ---- alerts --------------------------------------------------------------------------------

# A balance alert is cleared once the tenant's available credits are back at its threshold
# (or it set none), so the next fall below is a new crossing.
CLEAR_BALANCE_ALERTS = (
    "UPDATE alerts AS o SET cleared_at = %(now)s FROM accounts AS a LEFT JOIN alert_settings AS s USING (tenant_id)"
    " WHERE o.alert = 'account.balance_low' AND o.cleared_at IS NULL AND a.tenant_id = o.tenant_id"
    " AND (s.balance_low_below IS NULL OR a.posted - a.pending >= s.balance_low_below)")
# Every line a tenant is across now, one row each: the balance below its threshold, a grant
# with credits left expiring within its notice, a key's period whose cap refused a hold or is
# spent; each raised at most once while open (the partial unique index one_open_alert).
RAISE_ALERTS = """
INSERT INTO alerts (id, tenant_id, alert, subject, details, raised_at)
SELECT 'alrt_' || replace(gen_random_uuid()::text, '-', ''), tenant_id, alert, subject, details, %(now)s FROM (
  SELECT a.tenant_id, 'account.balance_low' AS alert, '' AS subject,
         jsonb_build_object('available', a.posted - a.pending, 'threshold', s.balance_low_below) AS details
  FROM accounts AS a JOIN alert_settings AS s USING (tenant_id) WHERE a.posted - a.pending < s.balance_low_below
  UNION ALL
  SELECT g.tenant_id, 'account.grant_expiring', g.id::text,
         jsonb_build_object('grant_id', g.id, 'remaining', g.remaining, 'expires_at', g.expires_at,
                            'notice_days', coalesce(s.grant_expiring_days, %(notice)s))
  FROM grants AS g LEFT JOIN alert_settings AS s USING (tenant_id)
  WHERE g.remaining > 0 AND g.expires_at > %(now)s
    AND g.expires_at <= %(now)s + make_interval(days => coalesce(s.grant_expiring_days, %(notice)s))
  UNION ALL
  SELECT k.tenant_id, 'account.key_cap_reached', k.api_key_id || ':' || k.period || ':' || k.starts_on,
         jsonb_build_object('api_key_id', k.api_key_id, 'period', k.period, 'period_start', k.starts_on,
                            'cap', k.cap, 'spent', k.spent)
  FROM key_spend AS k WHERE k.cap IS NOT NULL AND (k.refused OR k.spent >= k.cap)
    AND ((k.period = 'day' AND k.starts_on = %(day)s) OR (k.period = 'month' AND k.starts_on = %(month)s))
) AS crossed
ON CONFLICT (tenant_id, alert, subject) WHERE cleared_at IS NULL DO NOTHING
RETURNING id, tenant_id, alert, details, raised_at"""
RAISE_ONE_ALERT = (
    "INSERT INTO alerts (id, tenant_id, alert, subject, details, raised_at)"
    " VALUES ('alrt_' || replace(gen_random_uuid()::text, '-', ''), %s, %s, %s, %s, %s)"
    " ON CONFLICT (tenant_id, alert, subject) WHERE cleared_at IS NULL DO NOTHING"
    " RETURNING id, tenant_id, alert, details, raised_at")


async def raise_due_alerts(conn: psycopg.AsyncConnection, now, day, month, notice_days: int) -> list[dict]:
    """Clear the balance alerts whose balance is back, then raise every crossing not raised yet;
    the alerts raised (id, tenant_id, alert, details, raised_at)."""
    await conn.execute(CLEAR_BALANCE_ALERTS, {"now": now})
    return await _rows(conn, RAISE_ALERTS, {"now": now, "day": day, "month": month, "notice": notice_days})


async def raise_alert(conn: psycopg.AsyncConnection, tenant_id: str, alert: str, subject: str, details,
                      now) -> dict | None:
    """One alert of a crossing the caller saw (a failed top-up); None when it was raised before."""
    return await (await conn.execute(RAISE_ONE_ALERT, [tenant_id, alert, subject, Jsonb(details), now])).fetchone()


async def set_alert_settings(conn: psycopg.AsyncConnection, tenant_id: str, balance_low_below: int | None,
                             grant_expiring_days: int) -> None:
    await conn.execute(
        "INSERT INTO alert_settings (tenant_id, balance_low_below, grant_expiring_days) VALUES (%s, %s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET balance_low_below = EXCLUDED.balance_low_below,"
        " grant_expiring_days = EXCLUDED.grant_expiring_days, updated_at = now()",
        [tenant_id, balance_low_below, grant_expiring_days])


async def alert_settings(conn: psycopg.AsyncConnection, tenant_id: str) -> dict | None:
    return await (await conn.execute("SELECT balance_low_below, grant_expiring_days FROM alert_settings"
                                      " WHERE tenant_id = %s", [tenant_id])).fetchone()


async def recent_alerts(conn: psycopg.AsyncConnection, tenant_id: str, limit: int) -> list[dict]:
    return await _rows(conn, "SELECT id, alert, details, raised_at, cleared_at FROM alerts WHERE tenant_id = %s"
                             " ORDER BY raised_at DESC, id LIMIT %s", [tenant_id, limit])
