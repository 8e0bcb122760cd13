"""Events a consumer does not know, kept: a record whose type this release has never heard of
(a later release wrote it, its producer upgraded first) is neither dead-lettered nor skipped
but held in the service's `events_held` table, counted and logged with the release that wrote
it. Whenever the consumer looks (at start, then every `bus_check_interval_s`), the held events
whose type it now knows (a replica of the later release is the one looking) are applied,
through the inbox like any other, and let go; the rest stay. A held event is applied after the
events of its job that came behind it, which the later release's handlers must allow for."""

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.common import telemetry
from services.common.bus.envelope import Envelope, KafkaRecord, MalformedEnvelope, UnknownType, from_kafka
from services.common.db import Pool

log = logging.getLogger(__name__)

HOLD = ("INSERT INTO events_held (event_id, event_type, topic, record_key, headers, body, producer_version)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING")
HELD = "SELECT event_id, topic, record_key, headers, body FROM events_held ORDER BY held_at, event_id LIMIT %s"
LET_GO = "DELETE FROM events_held WHERE event_id = %s"
BATCH = 500


@dataclass(frozen=True, kw_only=True)
class HeldRecord:
    """A held event as a record again, for `from_kafka`."""

    headers: list[tuple[str, bytes]]
    key: bytes | None
    value: bytes


def as_record(row: dict[str, object]) -> HeldRecord:
    headers = row["headers"]
    assert isinstance(headers, dict), "held headers are a JSON object"
    key, body = row["record_key"], row["body"]
    return HeldRecord(headers=[(name, str(value).encode()) for name, value in headers.items()],
                      key=bytes(key) if isinstance(key, bytes | memoryview) else None,
                      value=bytes(body) if isinstance(body, bytes | memoryview) else b"")


class HeldEvents:
    """The service's held events: kept (`hold`) and applied once known (`apply_known`)."""

    def __init__(self, service: str, pool: Pool) -> None:
        self.service, self.pool = service, pool

    async def hold(self, record: KafkaRecord, *, topic: str, unknown: UnknownType) -> None:
        headers = {name: value.decode(errors="replace") for name, value in dict(record.headers or ()).items()}
        async with self.pool.connection() as conn:
            await conn.execute(HOLD, [unknown.event_id, unknown.event_type, topic, record.key, json.dumps(headers),
                                      record.value or b"", unknown.producer_version])
        telemetry.EVENTS_HELD.labels(self.service, unknown.event_type).inc()
        log.warning("held %s from %s (release %s): this release does not know the type; a release that does"
                    " applies it", unknown.event_type, topic, unknown.producer_version or "before 0.2.0")

    async def apply_known(self, apply: Callable[[Envelope], Awaitable[object]]) -> int:
        """Apply (`apply`, through the inbox) each held event whose type is known now and let it
        go; returns how many. One that fails to apply stays for the next look."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(HELD, [BATCH])).fetchall()
        applied = 0
        for row in rows:
            if await self._applied(row, apply):
                async with self.pool.connection() as conn:
                    await conn.execute(LET_GO, [row["event_id"]])
                applied += 1
        if applied:
            log.info("applied %d held events whose types this release knows", applied)
        return applied

    async def _applied(self, row: dict[str, object], apply: Callable[[Envelope], Awaitable[object]]) -> bool:
        """Whether the held event was applied now: not while its type is unknown, nor while it
        cannot be read or applied (it stays held, and the reason is logged)."""
        try:
            envelope = from_kafka(as_record(row), str(row["topic"]))
        except UnknownType:
            return False
        except MalformedEnvelope as exc:
            log.warning("held event %s cannot be read by this release either: %s", row["event_id"], exc)
            return False
        try:
            await apply(envelope)
        except Exception:
            log.warning("held event %s (%s) failed to apply; it stays held", envelope.id, envelope.type, exc_info=True)
            return False
        return True
