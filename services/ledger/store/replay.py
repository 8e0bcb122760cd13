"""What `genline replay ledger` reads and compares in the database: the journal's events not
yet published, and the replayed balances set against the live accounts."""

from collections.abc import Iterable
from typing import Any

import psycopg

# The balances the replay compares, in the order of the rows `differing_balances` returns.
BALANCE_COLUMNS = ("posted", "pending", "retry_tokens", "owed")


def unpublished(conn: psycopg.Connection[Any], schema: str) -> int:
    """How many of `schema`'s outbox events are not yet published."""
    row = conn.execute(f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL').fetchone()
    assert row is not None  # a count always has its row
    return int(row[0])


def differing_balances(conn: psycopg.Connection[Any], schema: str,
                       *, replayed: Iterable[tuple[str, int, int, int, int]]) -> list[tuple[Any, ...]]:
    """The replayed balances (tenant, then BALANCE_COLUMNS), in a temporary table of this
    session (the auditor's role writes no schema), against the live accounts: a row per tenant
    that differs, (tenant, live and replayed value of each column in turn). Call inside a
    transaction, which drops the table."""
    conn.execute("CREATE TEMPORARY TABLE replayed_accounts (tenant_id text PRIMARY KEY, posted bigint,"
                 " pending bigint, retry_tokens bigint, owed bigint) ON COMMIT DROP")
    with conn.cursor().copy("COPY replayed_accounts FROM STDIN") as copy:
        for row in replayed:
            copy.write_row(row)
    columns = BALANCE_COLUMNS
    return conn.execute(
        f'SELECT coalesce(l.tenant_id, r.tenant_id) AS tenant_id, {", ".join(f"l.{c}, r.{c}" for c in columns)}'
        f' FROM "{schema}".accounts l FULL JOIN replayed_accounts r ON l.tenant_id = r.tenant_id'
        f' WHERE {" OR ".join(f"l.{c} IS DISTINCT FROM r.{c}" for c in columns)} ORDER BY 1'
    ).fetchall()


def differing_key_spend(conn: psycopg.Connection[Any], schema: str,
                        *, replayed: Iterable[tuple[Any, str, Any, int]]) -> list[tuple[Any, ...]]:
    """The replayed spend of each API key per period (key, period, first day, spent), in a
    temporary table of this session, against the live key_spend: (key, period, first day, live,
    replayed) of each row that differs (a row of no spend equals one that is absent). Call
    inside a transaction, which drops the table."""
    conn.execute("CREATE TEMPORARY TABLE replayed_key_spend (api_key_id uuid, period text, starts_on date,"
                 " spent bigint, PRIMARY KEY (api_key_id, period, starts_on)) ON COMMIT DROP")
    with conn.cursor().copy("COPY replayed_key_spend FROM STDIN") as copy:
        for row in replayed:
            copy.write_row(row)
    return conn.execute(
        "SELECT coalesce(l.api_key_id, r.api_key_id), coalesce(l.period, r.period), coalesce(l.starts_on, r.starts_on),"
        " coalesce(l.spent, 0), coalesce(r.spent, 0)"
        f' FROM "{schema}".key_spend l FULL JOIN replayed_key_spend r'
        " ON l.api_key_id = r.api_key_id AND l.period = r.period AND l.starts_on = r.starts_on"
        " WHERE coalesce(l.spent, 0) <> coalesce(r.spent, 0) ORDER BY 1, 2, 3").fetchall()
