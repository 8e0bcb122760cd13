"""`genline replay audit`: rebuild the audit trail from every service's topic and compare.

Reads the five topics from the beginning, keeps every AuditRecorded event once, and compares
them with the ledger's live `audit_log`: an entry missing on either side or differing in any
field is a difference, and the command exits non-zero.
"""

import argparse
import asyncio
import sys
import time

import psycopg

from services.common.contracts import PUBLISHERS, AuditRecorded, topic_of
from services.common.replay import decoded_envelopes, read_topic_to_end, report
from services.ledger.audit import COLUMNS
from services.ledger.settings import LedgerSettings

FIELDS = COLUMNS[1:]


async def rebuilt_trail(bootstrap: str, namespace: str) -> tuple[dict[str, tuple], int, int]:
    """The trail the topics hold, by event id; how many records were read, how many undecodable."""
    records = [r for publisher in PUBLISHERS for r in await read_topic_to_end(bootstrap, topic_of(publisher, namespace))]
    envelopes, malformed = decoded_envelopes(records)
    trail = {e.id: (e.event.at, e.event.service, e.event.actor, e.event.action, e.event.target, e.event.tenant_id,
                    e.event.details) for e in envelopes if isinstance(e.event, AuditRecorded)}
    return trail, len(records), malformed


def live_trail(conn: psycopg.Connection, schema: str) -> dict[str, tuple]:
    rows = conn.execute(f'SELECT {", ".join(COLUMNS)} FROM "{schema}".audit_log').fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def compare(live: dict[str, tuple], replayed: dict[str, tuple]) -> list[str]:
    lines = []
    for event_id in sorted(live.keys() | replayed.keys()):
        mine, theirs = live.get(event_id), replayed.get(event_id)
        if mine is None or theirs is None:
            lines.append(f"entry={event_id}: live={'present' if mine else 'missing'}"
                         f" replayed={'present' if theirs else 'missing'}")
            continue
        lines += [f"entry={event_id} {name}: live={a!r} replayed={b!r}"
                  for name, a, b in zip(FIELDS, mine, theirs, strict=True) if a != b]
    return lines


def replay_audit(settings: LedgerSettings, schema: str, out=print, settle_s: float = 30) -> int:
    """The ledger keeps other services' entries as it consumes their topics: a difference
    counts only when it lasts `settle_s`."""
    deadline = time.monotonic() + settle_s
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        while True:
            replayed, records, malformed = asyncio.run(rebuilt_trail(settings.kafka_bootstrap,
                                                                     settings.topic_namespace))
            differences = compare(live_trail(conn, schema), replayed)
            if not differences or time.monotonic() > deadline:
                break
            time.sleep(1)
    out(f"replayed {len(replayed)} audit entries ({records} records) from {len(PUBLISHERS)} topics")
    return report(out, malformed, differences, len({d.split()[0] for d in differences}), "audit entry")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genline replay audit", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["audit"])
    parser.add_argument("--schema", default="ledger", help="the live ledger schema to compare with")
    parser.add_argument("--settle", type=float, default=30, help="seconds a difference must last to count")
    args = parser.parse_args(argv)
    return replay_audit(LedgerSettings(), args.schema, settle_s=args.settle)


if __name__ == "__main__":
    sys.exit(main())
