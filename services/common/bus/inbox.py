"""The inbox: a consumer records the id of every event it applied in the transaction that
applied it, so a redelivered event is skipped; what a handler gets (HandlerContext), and
the errors that say whether trying again can help.

An inbox row goes once its event can never arrive again: its producer's journal stamped, on
a later record of the same topic, a floor past the time its row was written (journal.py).
Below that floor every reader group had read the event, so the broker does not deliver it
again, and neither a recovery nor `genline bus rebuild --all` publishes it again."""

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from services.common.bus.envelope import Envelope, envelop
from services.common.bus.outbox import OutboxRow, add_many_to_outbox, add_to_outbox, outbox_row, outbox_statement
from services.common.bus.writing import EventWriter
from services.common.contracts import Event
from services.common.db import Conn, Statement

T = TypeVar("T")


@dataclass(kw_only=True)
class HandlerContext:
    """What a handler gets: the open transaction, the incoming envelope, what was prepared
    for it, `emit`, and `after_commit` for what may only happen once its work is visible."""

    conn: Conn
    envelope: Envelope
    source: str
    writer: EventWriter
    prepared: Any = None  # what the event type's `prepare` returned, before the transaction
    # For a handler registered with `claims=True`: the event's claim on the inbox, which the
    # handler's first statement makes (InboxClaim); the transaction of a duplicate rolls back.
    claim: "InboxClaim | None" = None
    emitted: list[Envelope] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)

    @property
    def applied_before(self) -> bool:
        """The handler's claim found the event in the inbox: it has nothing to do."""
        return self.claim is not None and self.claim.claimed == []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (never if it rolls back)."""
        self.committed.append(callback)

    def _emitted(self, event: Event) -> Envelope:
        envelope = envelop(event, self.source, cause=self.envelope)
        self.emitted.append(envelope)
        return envelope

    async def emit(self, event: Event) -> Envelope:
        envelope = self._emitted(event)
        await add_to_outbox(self.conn, envelope, writer=self.writer)
        return envelope

    def announcing(self, event: Event) -> OutboxRow:
        """`emit`'s outbox row, for a statement of the handler's to add where its own rows say
        so (staged_event(row, from_rows=…), a CTE of it)."""
        return outbox_row(self._emitted(event), self.writer)

    def emitting(self, event: Event) -> Statement | None:
        """`emit`, as a statement the handler sends with its own last write (db.together)."""
        return outbox_statement([self._emitted(event)], self.writer)


Handler = Callable[[HandlerContext, Event], Awaitable[None]]
Prepare = Callable[[Envelope], Awaitable[Any]]


class Publish:
    """How a batch handler publishes: events, each with the envelope that caused it, added to
    the outbox in the batch's transaction, at once (`await publish(caused)`), or as a
    statement the handler sends with its own last writes (`publish.statement(caused)`, run
    with `db.together`): one statement fewer."""

    def __init__(self, conn: Conn, source: str, *, writer: EventWriter) -> None:
        self.conn, self.source, self.writer = conn, source, writer
        self.outgoing: list[Envelope] = []

    def _envelopes(self, caused: list[tuple[Event, Envelope]]) -> list[Envelope]:
        batch = [envelop(event, self.source, cause=cause) for event, cause in caused]
        self.outgoing.extend(batch)
        return batch

    def statement(self, caused: list[tuple[Event, Envelope]]) -> Statement | None:
        return outbox_statement(self._envelopes(caused), self.writer)

    async def __call__(self, caused: list[tuple[Event, Envelope]]) -> None:
        await add_many_to_outbox(self.conn, self._envelopes(caused), writer=self.writer)


# A batch handler gets the open transaction, the batch's claim on the inbox (InboxClaim),
# which its first statement makes and which tells it the envelopes not yet applied, and
# `publish`, which it calls when it likes, so its most contended writes can come last.
BatchHandler = Callable[[Conn, "InboxClaim", Publish], Awaitable[None]]


async def record_applied(conn: Conn, envelope: Envelope) -> bool:
    """Claim the event for this transaction; False means it was applied before."""
    cur = await conn.execute(
        "INSERT INTO inbox (event_id, event_type, topic, journaled_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [envelope.id, envelope.type, envelope.topic, envelope.journaled_at],
    )
    return cur.rowcount == 1


class InboxClaim:
    """The claim on the inbox of a batch (or of one event), made by the first statement of
    the transaction that applies it, and `fresh`, which reads back which envelopes were not
    applied before. A handler writes its first statement as it likes and hands it to `first`
    (or `first_by_name`), which adds the claim to it: one statement where two were. The
    statement reads the ids it claimed as `(SELECT ids FROM claimed_ids)` (a text array, null
    for none) and returns them for `fresh`. What the statement reads or locks for a duplicate
    is for nothing, which a redelivery (rare) can afford. (The transaction of a single event
    found applied before rolls back, so a first statement that writes leaves nothing
    either.)"""

    # The claim as the statement's first CTEs: its parameters go first, or by name.
    _CLAIM = ("inbox_claim AS (INSERT INTO inbox (event_id, event_type, topic, journaled_at)"
              " SELECT * FROM unnest({}::text[], {}::text[], {}::text[], {}::timestamptz[])"
              " ON CONFLICT DO NOTHING RETURNING event_id),"
              " claimed_ids AS (SELECT array_agg(event_id) AS ids FROM inbox_claim)")
    _BY_NAME = ("inbox_ids", "inbox_types", "inbox_topics", "inbox_times")
    _CLAIM_BY_POSITION = _CLAIM.format(*["%b"] * 4)
    _CLAIM_BY_NAME = _CLAIM.format(*[f"%({name})b" for name in _BY_NAME])

    def __init__(self, envelopes: list[Envelope]) -> None:
        self.envelopes = envelopes
        self.claimed: list[Envelope] | None = None

    @property
    def params(self) -> list[list[Any]]:
        envelopes = self.envelopes
        return [[e.id for e in envelopes], [e.type for e in envelopes], [e.topic for e in envelopes],
                [e.journaled_at for e in envelopes]]

    def first(self, sql: str, params: list[Any]) -> Statement:
        """`sql` (with `params`, by position) as the statement that also makes the claim."""
        return _with(self._CLAIM_BY_POSITION, sql), [*self.params, *params]

    def first_by_name(self, sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The same for a statement whose parameters are named."""
        return _with(self._CLAIM_BY_NAME, sql), params | dict(zip(self._BY_NAME, self.params, strict=True))

    def fresh(self, claimed_ids: Iterable[str] | None) -> list[Envelope]:
        """The envelopes whose ids the claim inserted, in order, each id once (the first
        occurrence wins); kept as `claimed`."""
        fresh = set(claimed_ids or ())
        claimed = []
        for envelope in self.envelopes:
            if envelope.id in fresh:
                fresh.discard(envelope.id)
                claimed.append(envelope)
        self.claimed = claimed
        return claimed

    async def alone(self, conn: Conn) -> list[Envelope]:
        """Make the claim in a statement of its own; returns `fresh`."""
        row = await (await conn.execute(*self.first("SELECT ids FROM claimed_ids", []))).fetchone()
        return self.fresh(row["ids"] if row else None)


def _with(ctes: str, sql: str) -> str:
    """`sql` with `ctes` as its first common table expressions."""
    words = sql.split(maxsplit=2)
    if words[0].upper() != "WITH":
        return f"WITH {ctes} {sql.lstrip()}"
    if words[1].upper() == "RECURSIVE":
        return f"WITH RECURSIVE {ctes}, {words[2]}"
    return f"WITH {ctes}, {sql.split(maxsplit=1)[1]}"


INBOX_PRUNE_BATCH = 5_000


async def prune_inbox(conn: Conn, floors: dict[str, datetime]) -> int:
    """Forget the events of each topic written to their journal before that topic's floor
    (the highest seen); returns how many rows went."""
    pruned = 0
    for topic, floor in sorted(floors.items()):
        while True:
            cur = await conn.execute(
                "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM inbox WHERE topic = %s"
                " AND journaled_at < %s ORDER BY journaled_at LIMIT %s)", [topic, floor, INBOX_PRUNE_BATCH])
            pruned += cur.rowcount
            if cur.rowcount < INBOX_PRUNE_BATCH:
                break
    return pruned


# A fetched batch at least this large is checked against the inbox in one query first.
SKIP_CHECK_BATCH = 16


class TransientConflict(Exception):
    """A concurrent transaction won a race; applying the same work again on fresh state
    will succeed."""


RACE_RETRIES = 8


async def retry_races(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (one whole transaction) again while it loses races, with a short jitter."""
    for attempt in range(1, RACE_RETRIES):
        try:
            return await work()
        except TransientConflict:
            await asyncio.sleep(random.random() * 0.005 * attempt)
    return await work()  # the last try: a race it loses is the caller's


class PermanentError(Exception):
    """A failure that retrying cannot fix: the message goes to the DLQ at once."""


class ServiceAway(Exception):
    """Another service that the handler asks (ingest's data-key API, say) does not answer: it
    restarts, or is being rolled out. As with the database, waiting for it is no failure of
    the event: the consumer applies the event again after a pause, counting none of its
    attempts, so a crash of one service never sends another's events to the DLQ."""
