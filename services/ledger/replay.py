"""`genline replay ledger`: rebuild every account and every API key's spend from the ledger's
events and compare.

Reads every event the ledger ever published: from its journal by default (its outbox, kept
for ever, read in the same snapshot as the accounts), or from its topic from the beginning
(`--source topics`, for a Kafka that keeps it). Folds them into balances and into each key's
spend per day and month, compares them with the live `accounts` and `key_spend` tables (in
temporary tables of the session), prints every difference, and exits non-zero if there is any.
"""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from services.common.bus import (
    Differences,
    HistoryRecord,
    client_options,
    decoded_envelopes,
    read_journal,
    read_topic_to_end,
    report,
)
from services.common.contracts import Event, topic_of
from services.common.settings import ServiceSettings
from services.ledger.balances_replayed import ReplayedAccount, replay_balances, replay_key_spend
from services.ledger.key_caps import SpendRow
from services.ledger.store.replay import BALANCE_COLUMNS, differing_balances, differing_key_spend, unpublished


@dataclass(frozen=True, kw_only=True)
class Difference:
    tenant_id: str
    column: str
    live: int | None
    replayed: int | None


def ledger_events(records: Sequence[HistoryRecord]) -> tuple[list[Event], int]:
    """Decoded events, each event id once; and how many records could not be decoded."""
    envelopes, malformed = decoded_envelopes(records)
    return [envelope.event for envelope in envelopes], malformed


def wait_for_outbox(conn: psycopg.Connection[Any], schema: str, *, timeout_s: float) -> int:
    """The live tables are ahead of the topic until the outbox is relayed; wait for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending = unpublished(conn, schema)
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)


def compare_key_spend(conn: psycopg.Connection[Any], schema: str, *, spent: dict[SpendRow, int]) -> list[str]:
    """Each key's replayed spend against the live key_spend, as report lines; in a transaction."""
    rows = differing_key_spend(conn, schema, replayed=((key, period, starts_on, amount)
                                              for (key, period, starts_on), amount in spent.items()))
    return [f"key={key} {period} from {starts_on} spent: live={live} replayed={replayed}"
            for key, period, starts_on, live, replayed in rows]


def compare(conn: psycopg.Connection[Any], schema: str, *, balances: dict[str, ReplayedAccount]) -> list[Difference]:
    """The replayed balances, in a temporary table of this session (the auditor's role writes
    no schema), against the live accounts; called inside a transaction, which drops it."""
    rows = differing_balances(conn, schema, replayed=((tenant_id, a.posted, a.pending, a.retry_tokens, a.owed)
                                             for tenant_id, a in balances.items()))
    return [Difference(tenant_id=row[0], column=column, live=row[1 + 2 * i], replayed=row[2 + 2 * i])
            for row in rows for i, column in enumerate(BALANCE_COLUMNS) if row[1 + 2 * i] != row[2 + 2 * i]]


@dataclass(frozen=True)
class LedgerReplay:
    """What a replay compares: the live ledger `schema`, the events read from its journal or its
    topic (`source`), and how long to wait for its outbox to be published (topics only)."""

    schema: str = "ledger"
    source: str = "journal"
    outbox_timeout_s: float = 30


def replay_ledger(settings: ServiceSettings, replay: LedgerReplay, *, out: Callable[[str], object] = print) -> int:
    schema, source = replay.schema, replay.source
    topic = topic_of("ledger", settings.topic_namespace)
    unrelayed = 0
    records: Sequence[HistoryRecord] = []
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        if source == "topics":
            unrelayed = wait_for_outbox(conn, schema, timeout_s=replay.outbox_timeout_s)
            records = asyncio.run(read_topic_to_end(client_options(settings), topic))
            where = topic
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():  # the journal and the accounts as of one instant
            if source == "journal":
                records, where = read_journal(conn, schema), f"the journal of {schema}"
            events, malformed = ledger_events(records)
            balances, spent = replay_balances(events), replay_key_spend(events)
            differences = compare(conn, schema, balances=balances)
            key_lines = compare_key_spend(conn, schema, spent=spent)
    out(f"replayed {len(events)} events ({len(records)} records) from {where} into {len(balances)} accounts"
        f" and {len(spent)} rows of key spend")
    if unrelayed:
        out(f"warning: {unrelayed} events of {schema} were not yet published; they count as differences")
    lines = [f"tenant={d.tenant_id} {d.column}: live={d.live} replayed={d.replayed}" for d in differences]
    accounts = len({d.tenant_id for d in differences})
    noun = "key spend row" if not accounts else "account or key spend row" if key_lines else "account"
    return report(out, Differences(lines=lines + key_lines, differing=accounts + len(key_lines), noun=noun, malformed=malformed))
