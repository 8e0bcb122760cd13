"""All of the ledger's SQL. This module: loading the slice of ledger state a batch touches
(its jobs locked) in the statement that claims it on the inbox, and writing back what the
batch changed in one more (two where it opens an account), whatever the batch size and the
tables it touches.

accounts.py   a balance, grants and journal as the API shows them; report policy; the sweep; reconciliation
alerts.py     alerts cleared and raised, and a tenant's alert settings
audit.py      the audit trail: entries kept once, the operators' view, a schema's whole trail
evaluations.py evaluations charged, once each
payments.py   the payment tables: events once, customers, checkouts, refunds, disputes, auto top-up
replay.py     `genline replay ledger`: unpublished events, replayed balances against the live ones
rows.py       rows as dicts in one call
training.py   jobs' training lines, the identities charged and the photo sets seen trained
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import DictRow

from services.common.bus import InboxClaim, TransientConflict
from services.common.db import (
    Conn,
    Statement,
    added,
    as_arrays,
    inserted,
    inserted_if_absent,
    together,
    typed_arrays,
    updated,
)
from services.ledger.domain import Book
from services.ledger.key_caps import period_start
from services.ledger.records import Account, Grant, Transfer
from services.ledger.store.rows import rows_of
from services.ledger.store.training import HOLD_COLUMNS, keep_hold, read_training, training_written

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


def one_shape(kinds: dict[str, tuple[str, dict[str, str]]]) -> str:
    """The rows of several sources as rows of one shape, a kind each: for each kind, its source
    (a table, a CTE, a function) and its columns; a column another kind has and it lacks is
    null. A source with a column `kind` names each row's kind itself."""
    shape = {column: pg_type for _, columns in kinds.values() for column, pg_type in columns.items() if column != "kind"}
    return " UNION ALL ".join(
        ("SELECT kind, " if "kind" in columns else f"SELECT '{kind}' AS kind, ")
        + ", ".join(column if column in columns else f"NULL::{pg_type} AS {column}" for column, pg_type in shape.items())
        + f" FROM {source}" for kind, (source, columns) in kinds.items())


@dataclass(frozen=True, kw_only=True)
class JobsRead:
    """The jobs a batch touches (their transfers locked), and of those, the ones whose provider
    costs (`costs_of`) and reports (`reports_of`) it needs; by default every job."""

    jobs: Iterable[UUID]
    costs_of: Iterable[UUID] | None = None
    reports_of: Iterable[UUID] | None = None
    subjects: Iterable[tuple[str, UUID]] = ()  # (tenant, subject) of the jobs submitted: their photo sets trained

    def ids(self) -> tuple[list[UUID], list[UUID], list[UUID]]:
        """The jobs, those whose costs are read and those whose reports are."""
        jobs = list(set(self.jobs))
        return (jobs, jobs if self.costs_of is None else list(set(self.costs_of)),
                jobs if self.reports_of is None else list(set(self.reports_of)))


async def load_book(conn: Conn, book: Book, *, tenant_ids: Iterable[str], job_ids: Iterable[UUID]) -> Book:
    """The balances of `tenant_ids` (read_balances) and what the book knows of `job_ids`
    (read_jobs)."""
    await read_balances(conn, book, tenant_ids=tenant_ids)
    return await read_jobs(conn, book, read=JobsRead(jobs=job_ids))


@dataclass(frozen=True, kw_only=True)
class KeysSpent:
    """The API keys whose spend a batch reads (those its jobs were submitted with), in the
    periods starting on `starts`."""

    api_key_ids: Iterable[UUID] = ()
    starts: Iterable[date] = ()


async def read_balances(conn: Conn, book: Book, *, tenant_ids: Iterable[str]) -> Book:
    """Accounts and grants, read without locks (their changes are written as deltas that the
    database checks)."""
    tenants = sorted(set(tenant_ids))
    for row in await rows_of(conn, BALANCES, params=[tenants, tenants, [], []]):
        keep(book, row)
    return book


async def read_claimed(conn: Conn, book: Book, *, claim: InboxClaim, tenant_ids: Iterable[str],
                       spent: KeysSpent, jobs: JobsRead) -> Book:
    """A batch's first statement, which claims it on the inbox (`claim`, then told which events
    are fresh): the balances of `tenant_ids` and the keys' spend (`spent`), read without locks,
    and the jobs `jobs` names, locked (read_jobs); then the photo sets their subjects trained."""
    tenants, days = sorted(set(tenant_ids)), sorted(set(spent.starts))
    ids, costs, reports = jobs.ids()
    sql, params = claim.first(CLAIMED_BATCH, [ids, ids, tenants, tenants, sorted(set(spent.api_key_ids)), days,
                                              ids, costs, reports])
    rows = await rows_of(conn, sql, params=params)
    claim.fresh(row["source"] for row in rows if row["kind"] == "claimed")
    for row in rows:
        keep(book, row)
    await read_training(conn, book, subjects=jobs.subjects)
    return book


async def read_jobs(conn: Conn, book: Book, *, read: JobsRead) -> Book:
    """A job's transfer is locked, so it settles once; what is read after the lock (closed
    jobs, costs, reports) is then what the lock's last holder committed. Provider costs and
    reports are read for the jobs `read` names: a batch that settles nothing needs no costs,
    one that reports nothing no reports. One statement (JOBS_LOCKED)."""
    ids, costs, reports = read.ids()
    if ids or costs or reports:
        for row in await rows_of(conn, JOBS_LOCKED, params=[ids, ids, ids, costs, reports]):
            keep(book, row)
    await read_training(conn, book, subjects=read.subjects)
    return book


def keep(book: Book, row: dict[str, Any]) -> None:
    """A row of one shape (one_shape) kept in the book as what its kind says it is."""
    kind = row.pop("kind")
    if kind == "grant":
        grant = Grant(**{column: row[column] for column in GRANT_COLUMNS})
        book.grants.setdefault(grant.tenant_id, []).append(grant)
        book.loaded_grants[grant.id] = grant.remaining
    elif kind == "account":
        book.accounts[row["tenant_id"]] = Account(**{column: row[column] for column in ACCOUNT_FIELDS})
        book.loaded_accounts[row["tenant_id"]] = (row["posted"], row["pending"], row["retry_tokens"])
    elif kind == "spend":
        book.key_spend.loaded[(row["api_key_id"], row["period"], row["starts_on"])] = row["spent"]
    elif kind == "transfer":
        book.transfers[row["job_id"]] = Transfer(**{column: row[column] for column in TRANSFER_COLUMNS})
    elif kind == "hold":
        keep_hold(book, row)
    elif kind == "closed":
        book.closed.add(row["job_id"])
    elif kind == "cost":
        book.provider_costs[row["job_id"]] = row["amount"]
    elif kind == "report":
        book.reported.add((row["job_id"], row["amount"]))


# The jobs' transfers and training lines, locked, then what was committed by the locks' last
# holders, in one statement: a line is written only with its job's transfer (held with the
# reservation, settled with it), and the function after_the_lock (migrations/0015) reads the
# closed jobs, costs and reports as a query of its own, after the locks. Its rows come last:
# the statement's parts run in order.
LOCKED_JOBS = (f"WITH transfer AS (SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers"
               " WHERE job_id = ANY(%b::uuid[]) FOR UPDATE),"
               f" hold AS (SELECT {', '.join(HOLD_COLUMNS)} FROM training_holds"
               " WHERE job_id = ANY(%b::uuid[]) FOR UPDATE) ")
JOB_KINDS = {"transfer": ("transfer", TRANSFER_COLUMNS), "hold": ("hold", HOLD_COLUMNS),
             "after": ("after_the_lock(%b::uuid[], %b::uuid[], %b::uuid[])",
                       {"kind": "text", "job_id": "uuid", "amount": "bigint"})}
JOBS_LOCKED = LOCKED_JOBS + one_shape(JOB_KINDS)


# The tenants' accounts, their grants with credits left and the keys' spend, in one
# statement: rows of one shape, each a balance (kind 'account'), a grant or a key's spend in a
# period.
ACCOUNT_SHAPE = {"tenant_id": "text", "posted": "bigint", "pending": "bigint", "retry_tokens": "int",
                 "report_policy": "text", "owed": "bigint"}
ACCOUNT_FIELDS = tuple(ACCOUNT_SHAPE)
BALANCE_KINDS = {
    "account": ("accounts WHERE tenant_id = ANY(%b)", ACCOUNT_SHAPE),
    "grant": ("grants WHERE tenant_id = ANY(%b) AND remaining > 0", GRANT_COLUMNS),
    "spend": ("key_spend WHERE api_key_id = ANY(%b::uuid[]) AND starts_on = ANY(%b::date[])",
              {"api_key_id": "uuid", "period": "text", "starts_on": "date", "spent": "bigint"})}
BALANCES = one_shape(BALANCE_KINDS)
# A batch's first statement: the balances, a row of kind 'claimed' for each event id its claim
# on the inbox inserted (in `source`), then its jobs, locked (JOBS_LOCKED), last. The balances
# are read in the statement's snapshot, as they were before a lock was waited for: their
# changes are deltas the database checks.
CLAIMED_BATCH = LOCKED_JOBS + one_shape(BALANCE_KINDS | {
    "claimed": ("(SELECT unnest(ids) AS source FROM claimed_ids) AS claimed", {"source": "text"})} | JOB_KINDS)


def _values(obj: object, columns: dict[str, str]) -> tuple[Any, ...]:
    return tuple(getattr(obj, c) for c in columns)


class LostRace(TransientConflict):
    """A concurrent batch changed the same balances first and the database refused the sum
    (or the same job was reserved twice); the batch is rolled back and applied again."""


RACES = (psycopg.errors.CheckViolation, psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected)


async def write_book(conn: Conn, book: Book, *, published: Statement | None = None) -> None:
    try:
        await _write_book(conn, book, published=published)
    except RACES as exc:
        raise LostRace(str(exc)) from exc


async def _write_book(conn: Conn, book: Book, *, published: Statement | None) -> None:
    """The new rows, each table's in a CTE, with the outbox rows of what the batch
    `published` (Publish.statement); then the changes to rows that exist (settled transfers,
    grants drawn on, balances), last, so that the rows concurrent batches share (balances,
    grants) are locked for the shortest time. One statement, or two where a change is to a
    row the first inserts (a new account's balance): a CTE does not see another's rows."""
    new_training, training_changes = training_written(book)
    new_rows = [
        published,
        *new_training,
        inserted_if_absent("accounts", ACCOUNT_COLUMNS, rows=[(t, 0, 0, 0) for t in sorted(book.new_accounts)]),
        inserted("grants", GRANT_COLUMNS, rows=[_values(g, GRANT_COLUMNS) for g in book.new_grants]),
        inserted("transfers", TRANSFER_COLUMNS, rows=[_values(t, TRANSFER_COLUMNS) for t in book.new_transfers]),
        inserted("entries", ENTRY_COLUMNS, rows=[_values(e, ENTRY_COLUMNS) for e in book.entries]),
        inserted_if_absent("provider_costs", COST_COLUMNS, rows=[_values(c, COST_COLUMNS) for c in book.new_costs]),
        inserted("reports", REPORT_COLUMNS, rows=book.new_reports),
        inserted_if_absent("closed_jobs", CLOSED_COLUMNS, rows=book.new_closed)]
    changes = [
        updated("transfers", SETTLED_COLUMNS, rows=[_values(t, SETTLED_COLUMNS) for t in book.changed_transfers
                                                    if t not in book.new_transfers]),  # a new one is inserted as it ends
        *training_changes,
        added("grants", {"id": "uuid", "remaining": "bigint"}, rows=[(gid, -taken) for gid, taken in book.grants_taken()]),
        *key_spend_written(book.key_spend.changes()),
        added("accounts", ACCOUNT_COLUMNS, rows=book.account_deltas())]
    if book.new_accounts:
        await together(conn, new_rows)
        await together(conn, changes)
    else:
        await together(conn, [*new_rows, *changes])
    if book.owed_changes:  # only payments change debts, never a job's batch
        await together(conn, [added("accounts", {"tenant_id": "text", "owed": "bigint"},
                                    rows=sorted(book.owed_changes.items()))])


def key_spend_written(rows: list[tuple[Any, ...]]) -> list[Statement | None]:
    """The statements that write a batch's net change to each key's spend rows (one each)."""
    held, released = [r for r in rows if r[4] >= 0], [r for r in rows if r[4] < 0]
    arrays = typed_arrays(KEY_SPEND_COLUMNS)
    return [(KEY_SPEND_HELD.format(arrays=arrays), as_arrays(held)) if held else None,
            (KEY_SPEND_RELEASED.format(arrays=arrays), as_arrays(released)) if released else None]


async def key_spend_of(conn: Conn, tenant_id: str, *, api_key_ids: list[UUID], day: date) -> list[DictRow]:
    """Each of the tenant's keys' spend on `day` and in its month, as the ledger's API shows it."""
    return await rows_of(conn, "SELECT api_key_id, period, spent FROM key_spend WHERE tenant_id = %s"
                             " AND api_key_id = ANY(%b)"
                             " AND ((period = 'day' AND starts_on = %s) OR (period = 'month' AND starts_on = %s))",
                       params=[tenant_id, api_key_ids, day, period_start("month", day)])
