"""`genline replay audit`: rebuild the audit trail from every service's events and compare.

Reads the five services' events, from their journals by default (their outboxes) or from their
topics from the beginning (`--source topics`), keeps every AuditRecorded event once, and
compares them with the ledger's live `audit_log`: an entry missing on either side or differing
in any field is a difference, and the command exits non-zero. Entries older than the horizon
of a journal pruned after its retention window are counted and left out.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import psycopg

from services.common.bus import (
    Differences,
    decoded_envelopes,
    journal_horizon,
    journal_schema,
    read_history,
    report,
    until_settled,
)
from services.common.contracts import PUBLISHERS, AuditRecorded
from services.common.settings import ServiceSettings
from services.ledger.store.audit import COLUMNS, whole_trail

FIELDS = COLUMNS[1:]
# An entry of the trail by its fields after the event id (FIELDS).
Entry: TypeAlias = tuple[Any, ...]
# What one look found: the replayed trail, records read, undecodable ones, entries too old to compare.
Look: TypeAlias = tuple[dict[str, Entry], int, int, set[str]]


def rebuilt_trail(conn: psycopg.Connection[Any], settings: ServiceSettings, *, schema: str,
                  source: str) -> tuple[dict[str, Entry], int, int]:
    """The trail the services' events hold, by event id; how many records were read, how
    many undecodable."""
    schemas = {publisher: journal_schema(publisher, schema, service="ledger") or publisher for publisher in PUBLISHERS}
    records = read_history(conn, source, settings=settings, schemas=schemas)
    envelopes, malformed = decoded_envelopes(records)
    trail = {e.id: (e.event.at, e.event.service, e.event.actor, e.event.action, e.event.target, e.event.tenant_id,
                    e.event.details) for e in envelopes if isinstance(e.event, AuditRecorded)}
    return trail, len(records), malformed


def live_trail(conn: psycopg.Connection[Any], schema: str) -> dict[str, Entry]:
    return {row[0]: tuple(row[1:]) for row in whole_trail(conn, schema)}


def compare(live: dict[str, Entry], replayed: dict[str, Entry]) -> list[str]:
    lines: list[str] = []
    for event_id in sorted(live.keys() | replayed.keys()):
        mine, theirs = live.get(event_id), replayed.get(event_id)
        if mine is None or theirs is None:
            lines.append(f"entry={event_id}: live={'present' if mine else 'missing'}"
                         f" replayed={'present' if theirs else 'missing'}")
            continue
        lines += [f"entry={event_id} {name}: live={a!r} replayed={b!r}"
                  for name, a, b in zip(FIELDS, mine, theirs, strict=True) if a != b]
    return lines


@dataclass(frozen=True)
class AuditReplay:
    """What a replay of the trail compares: the live ledger `schema`, the services' events read
    from their journals or their topics (`source`), and how long a difference must last to
    count (`settle_s`: the ledger keeps other services' entries as it consumes their events)."""

    schema: str = "ledger"
    source: str = "journal"
    settle_s: float = 30


def replay_audit(settings: ServiceSettings, replay: AuditReplay, *, out: Callable[[str], object] = print) -> int:
    schema, source = replay.schema, replay.source
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        horizon = None
        if source == "journal":
            horizon = journal_horizon(conn, [journal_schema(p, schema, service="ledger") or p for p in PUBLISHERS])

        def look() -> tuple[list[str], Look]:
            replayed, records, malformed = rebuilt_trail(conn, settings, schema=schema, source=source)
            live = live_trail(conn, schema)
            older = {i for i, entry in live.items() if horizon is not None and entry[0] < horizon}
            return compare({i: e for i, e in live.items() if i not in older},
                           {i: e for i, e in replayed.items() if i not in older}), (replayed, records, malformed, older)

        differences, (replayed, records, malformed, older) = until_settled(replay.settle_s, look)
    out(f"replayed {len(replayed)} audit entries ({records} records) from {len(PUBLISHERS)}"
        f" {'journals' if source == 'journal' else 'topics'}")
    if older and horizon is not None:
        out(f"{len(older)} entries older than the journals' horizon ({horizon.isoformat()}) not compared")
    return report(out, Differences(lines=differences, differing=len({d.split()[0] for d in differences}), noun="audit entry", malformed=malformed))
