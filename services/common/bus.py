"""Kafka wiring: the transactional outbox, the inbox, and consumers with retries and a DLQ.

No dual writes: a handler changes state and adds its events to the outbox in one database
transaction; the relay publishes them after commit. A consumer records the id of every
event it applied (the inbox) in that same transaction, so a redelivered event is skipped.
A message that keeps failing goes to `<topic>.dlq` with the error after bounded retries.
"""

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool

from services.common import telemetry, tracing
from services.common.contracts import Event, dead_letter_topic
from services.common.db import insert_many, listen
from services.common.envelope import Envelope, MalformedEnvelope, envelop, from_kafka, to_kafka

log = logging.getLogger(__name__)


# ---- outbox --------------------------------------------------------------------------


OUTBOX_INSERT = ("INSERT INTO outbox (event_id, event_type, topic, record_key, headers, body)"
                 " VALUES (%s, %s, %s, %s, %s, %s)")


def _outbox_row(envelope: Envelope, namespace: str) -> tuple:
    message = to_kafka(envelope)
    headers = {k: v.decode() for k, v in message.headers.items()}
    return (envelope.id, envelope.type, envelope.event.topic(namespace), message.key, json.dumps(headers),
            message.value)


async def add_to_outbox(conn: psycopg.AsyncConnection, envelope: Envelope, namespace: str) -> None:
    await conn.execute(OUTBOX_INSERT, _outbox_row(envelope, namespace))


OUTBOX_COLUMNS = {"event_id": "uuid", "event_type": "text", "topic": "text", "record_key": "bytea",
                  "headers": "jsonb", "body": "bytea"}


async def add_many_to_outbox(conn: psycopg.AsyncConnection, envelopes: list[Envelope], namespace: str) -> None:
    await insert_many(conn, "outbox", OUTBOX_COLUMNS, [_outbox_row(e, namespace) for e in envelopes])


# Where a prompt sits in the events that carry one: a JobSpec (`job`), a job view (`view`).
PROMPT_PATHS = ("{job,prompt}", "{view,prompt}")


async def erase_prompt_from_outbox(conn: psycopg.AsyncConnection, job_id) -> int:
    """Blank the prompt in the outbox rows of a job whose data was erased, sent or not, so
    that it is gone from this service's tables; returns the rows changed. Only a clear prompt
    (events from before prompts were sealed): a sealed one is gone with its data key."""
    changed = 0
    for path in PROMPT_PATHS:
        cur = await conn.execute(
            "UPDATE outbox SET body = convert_to(jsonb_set(convert_from(body, 'UTF8')::jsonb, %(path)s,"
            " '\"\"')::text, 'UTF8') WHERE record_key = %(key)s"
            " AND jsonb_typeof(convert_from(body, 'UTF8')::jsonb #> %(path)s) = 'string'"
            " AND convert_from(body, 'UTF8')::jsonb #>> %(path)s <> ''", {"path": path, "key": str(job_id).encode()})
        changed += cur.rowcount
    return changed


RELAY_BATCH = 200
# While a backlog drains, its size is counted at most this often.
BACKLOG_COUNT_INTERVAL_S = 1.0


def outbox_channel(schema: str) -> str:
    """The channel the outbox's trigger notifies when a transaction that added rows commits."""
    return f"outbox_{schema}"


class OutboxRelay:
    """Publishes committed outbox rows in order. Wakes on a commit anywhere that added rows
    (PostgreSQL NOTIFY, when `database_url` and `schema` are given: this process, another
    replica, a CLI), on `notify()` (this process committed) while no such listener is
    connected, and every poll interval as a safety net.

    `observers` are called with (event type, JSON body) of every row once it is published,
    which is how a service counts what it announced (the ledger's credits)."""

    def __init__(self, pool: AsyncConnectionPool, broker: KafkaBroker, service: str, poll_interval_s: float,
                 database_url: str | None = None, schema: str | None = None):
        self.pool, self.broker, self.service = pool, broker, service
        self.poll_interval_s = poll_interval_s
        self.database_url, self.schema = database_url, schema
        self.observers: list[Callable[[str, bytes], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self._listening = False
        self._backlog_counted_at = 0.0
        self._stopping = False

    def notify(self) -> None:
        """This process committed outbox rows. While the listener is connected, the commit's
        own NOTIFY wakes the relay: waking it here too made a second, empty pass (one more
        transaction) whenever the NOTIFY came during the first."""
        if not self._listening:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-outbox-relay")
        if self.database_url and self.schema:
            self._listener = asyncio.create_task(self._listen_for_commits(), name=f"{self.service}-outbox-listen")

    async def _listen_for_commits(self) -> None:
        # The poll carries on while the database is away.
        def on_notify(_payload: str | None) -> None:
            self._listening = True  # (re)connected or notified: every commit from now on is announced
            self._wake.set()

        def on_lost() -> None:
            self._listening = False

        await listen(self.database_url, outbox_channel(self.schema), on_notify, self.poll_interval_s, on_lost)

    async def stop(self, grace_s: float = 15) -> None:
        """Publish what is committed, then stop; never cancel a send half-way (what is left
        after the grace period is relayed by the next start)."""
        if self._listener:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if not self._task:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            log.warning("outbox relay did not drain in %ss; the next start relays the rest", grace_s)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            # Only a pass that began after stop() was asked is sure to see every row committed
            # before it; a pass already running may have selected just before such a commit.
            stopping = self._stopping
            try:
                while await self.relay_batch() == RELAY_BATCH:
                    if time.monotonic() - self._backlog_counted_at >= BACKLOG_COUNT_INTERVAL_S:
                        await self.measure_backlog()
                # A short batch took every row committed before it (but those another replica
                # is publishing): no backlog, and no query to count it on every commit.
                telemetry.OUTBOX_PENDING.labels(self.service).set(0)
            except Exception:  # broker or database away: keep the rows, try again later
                log.exception("outbox relay failed; will retry")
                stopping = False  # stop() gives up after its grace period
                await self.measure_backlog()
            if stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def measure_backlog(self) -> int | None:
        """Count the rows still to publish, also (above all) while the broker is away."""
        try:
            async with self.pool.connection(timeout=5) as conn:
                row = await (await conn.execute(
                    "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")).fetchone()
        except Exception:  # the database is away too: the last value stands
            log.warning("cannot count the outbox backlog", exc_info=True)
            return None
        telemetry.OUTBOX_PENDING.labels(self.service).set(row["n"])
        self._backlog_counted_at = time.monotonic()
        return row["n"]

    async def relay_batch(self, limit: int = RELAY_BATCH) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    "SELECT seq, event_type, topic, record_key, headers, body FROM outbox WHERE published_at IS NULL"
                    " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
                    [limit],
                )
            ).fetchall()
            if not rows:
                return 0
            # Confirmed sends, issued together so the producer still batches them; a row is
            # marked published only once the broker has acknowledged it.
            await asyncio.gather(*(self._send(row) for row in rows))
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE seq = ANY(%s)", [[r["seq"] for r in rows]]
            )
        telemetry.OUTBOX_RELAYED.labels(self.service).inc(len(rows))
        for observe in self.observers:
            for row in rows:
                observe(row["event_type"], bytes(row["body"]))
        return len(rows)

    async def _send(self, row: dict) -> None:
        await self.broker.publish(
            bytes(row["body"]),
            row["topic"],
            key=bytes(row["record_key"]) if row["record_key"] is not None else None,
            headers=row["headers"],
        )


# ---- inbox and handlers ---------------------------------------------------------------


@dataclass
class HandlerContext:
    """What a handler gets: the open transaction, the incoming envelope, what was prepared
    for it, `emit`, and `after_commit` for what may only happen once its work is visible."""

    conn: psycopg.AsyncConnection
    envelope: Envelope
    source: str
    namespace: str
    prepared: Any = None  # what the event type's `prepare` returned, before the transaction
    emitted: list[Envelope] = field(default_factory=list)
    committed: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (never if it rolls back)."""
        self.committed.append(callback)

    async def emit(self, event: Event) -> Envelope:
        envelope = envelop(event, self.source, cause=self.envelope)
        await add_to_outbox(self.conn, envelope, self.namespace)
        self.emitted.append(envelope)
        return envelope


Handler = Callable[[HandlerContext, Event], Awaitable[None]]
Prepare = Callable[[Envelope], Awaitable[Any]]
# A batch handler gets the open transaction, the not-yet-applied envelopes in order, and
# `publish`, which adds events (each with the envelope that caused it) to the outbox; it
# calls `publish` when it likes, so its most contended writes can come last.
Publish = Callable[[list[tuple[Event, Envelope]]], Awaitable[None]]
BatchHandler = Callable[[psycopg.AsyncConnection, list[Envelope], Publish], Awaitable[None]]


async def already_applied(conn: psycopg.AsyncConnection, event_id: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM inbox WHERE event_id = %s", [event_id])).fetchone()
    return row is not None


async def record_applied(conn: psycopg.AsyncConnection, envelope: Envelope) -> bool:
    """Claim the event for this transaction; False means it was applied before."""
    cur = await conn.execute(
        "INSERT INTO inbox (event_id, event_type) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [envelope.id, envelope.type],
    )
    return cur.rowcount == 1


async def record_applied_many(conn: psycopg.AsyncConnection, envelopes: list[Envelope]) -> list[Envelope]:
    """Claim a batch; returns the envelopes not applied before, in order, each id once."""
    cur = await conn.execute(
        "INSERT INTO inbox (event_id, event_type) SELECT * FROM unnest(%s::text[], %s::text[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        [[e.id for e in envelopes], [e.type for e in envelopes]],
    )
    fresh = {row["event_id"] for row in await cur.fetchall()}
    claimed = []
    for envelope in envelopes:  # the first occurrence of an id wins
        if envelope.id in fresh:
            fresh.discard(envelope.id)
            claimed.append(envelope)
    return claimed


class TransientConflict(Exception):
    """A concurrent transaction won a race; applying the same work again on fresh state
    will succeed."""


RACE_RETRIES = 8


async def retry_races(work: Callable[[], Awaitable]):
    """Run `work` (one whole transaction) again while it loses races, with a short jitter."""
    for attempt in range(1, RACE_RETRIES + 1):
        try:
            return await work()
        except TransientConflict:
            if attempt == RACE_RETRIES:
                raise
            await asyncio.sleep(random.random() * 0.005 * attempt)


class PermanentError(Exception):
    """A failure that retrying cannot fix: the message goes to the DLQ at once."""


class OffsetCommits:
    """The offsets of the records a consumer has applied, committed to the broker every
    interval instead of after each batch (on the embedded broker a commit is an object-store
    write per partition, and it delayed every hop). Nothing is traded for it: a record is
    noted only once it is applied, so a crash or a rebalance can only deliver again what the
    inbox then skips, in the order it came. `flush()` commits what is noted, before a stop."""

    def __init__(self, service: str, interval_s: float) -> None:
        self.service, self.interval_s = service, interval_s
        self._pending: dict[TopicPartition, int] = {}
        self._kafka = None  # the aiokafka consumer the records came from
        self._task: asyncio.Task | None = None
        self._flushed = False

    def applied(self, kafka, records) -> None:
        self._kafka = kafka
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._pending[tp] = max(self._pending.get(tp, 0), record.offset + 1)
        if not self._flushed and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._every_interval(), name=f"{self.service}-offset-commits")

    async def _every_interval(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval_s)
            await self.commit()

    async def commit(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending or self._kafka is None:
            return
        assigned = self._kafka.assignment()  # a partition handed to another member is theirs to commit
        offsets = {tp: offset for tp, offset in pending.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except KafkaError as exc:  # the broker is away, or the group is rebalancing: try again later
            log.warning("committing offsets failed, will retry: %s", exc)
            for tp, offset in offsets.items():
                self._pending[tp] = max(self._pending.get(tp, 0), offset)

    async def flush(self) -> None:
        """Commit what is noted, once, as the service stops; a batch still being applied
        meanwhile is not committed after it (the next start delivers it again)."""
        self._flushed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.commit()


def rewind(kafka, records) -> None:
    """Seek each partition of a batch back to its first record, so that the batch comes again."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    for tp, offset in first.items():
        kafka.seek(tp, offset)


class EventConsumer:
    """One consumer group of a service: routes each event type to its handler, exactly once
    in effect, with bounded retries and a dead-letter topic."""

    def __init__(self, service: str, pool: AsyncConnectionPool, relay: OutboxRelay, settings) -> None:
        self.service, self.pool, self.relay, self.settings = service, pool, relay, settings
        self.handlers: dict[type[Event], Handler] = {}
        self.preparers: dict[type[Event], Prepare] = {}
        self.batch_handler: BatchHandler | None = None
        self.batch_types: tuple[type[Event], ...] = ()
        self._lane_slots = asyncio.Semaphore(settings.consumer_lanes)
        self.offsets = OffsetCommits(service, settings.kafka_commit_interval_ms / 1000)

    def on(self, event_type: type[Event], prepare: "Prepare | None" = None) -> Callable[[Handler], Handler]:
        """Register the handler of `event_type`. `prepare`, if given, does the event's slow
        I/O and computation before the transaction opens (it must be safe to repeat); the
        handler finds its result in `ctx.prepared`."""
        def register(handler: Handler) -> Handler:
            self.handlers[event_type] = handler
            if prepare is not None:
                self.preparers[event_type] = prepare
            return handler

        return register

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_namespace}-{self.service}"

    def on_batch(self, event_types: tuple[type[Event], ...], handler: BatchHandler) -> None:
        """Apply these event types a batch per transaction (for throughput on hot rows)."""
        self.batch_types, self.batch_handler = event_types, handler

    def handles(self, envelope: Envelope) -> bool:
        return type(envelope.event) in self.handlers or isinstance(envelope.event, self.batch_types)

    def attach(self, broker: KafkaBroker, topics: Iterable[str]) -> None:
        s = self.settings
        topics = list(topics)
        telemetry.preinitialise(telemetry.DLQ_MESSAGES, *((self.service, topic) for topic in topics))
        handled = [*self.handlers, *self.batch_types]
        telemetry.preinitialise(telemetry.EVENTS_CONSUMED, *((self.service, t.event_type, outcome)
                                                             for t in handled for outcome in ("applied", "duplicate")))
        options = dict(
            group_id=self.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,  # see OffsetCommits
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
        )
        subscriber = broker.subscriber(*topics, batch=True, max_records=s.consumer_batch_size,
                                       batch_timeout_ms=s.kafka_batch_timeout_ms, **options)
        subscriber(self._committing(self._on_batch if self.batch_handler else self._on_records))
        self.broker = broker

    def _committing(self, apply: Callable[[KafkaMessage], Awaitable[None]]):
        """`apply` for a fetched batch; its offsets are committed later (OffsetCommits), and a
        batch that fails (the broker is away, even for the DLQ) is fetched again."""
        async def on_message(msg: KafkaMessage) -> None:
            try:
                await apply(msg)
            except BaseException:
                rewind(msg.consumer, msg.raw_message)
                raise
            self.offsets.applied(msg.consumer, msg.raw_message)

        return on_message

    async def _decode(self, records) -> list[tuple[object, Envelope]]:
        """The records this consumer handles, decoded; undecodable ones go to the DLQ."""
        decoded = []
        for record in records:
            try:
                envelope = from_kafka(dict(record.headers or ()), record.key, record.value)
            except MalformedEnvelope as exc:
                await self._dead_letter(record, exc, attempts=1)
                continue
            if self.handles(envelope):
                self._observe_queue_time(record, envelope)
                decoded.append((record, envelope))
        return decoded

    async def _on_records(self, msg: KafkaMessage) -> None:
        """Per-key lanes: the records of one key (one job) are applied in their order, those
        of different keys side by side, up to `consumer_lanes` at once. The offsets are
        committed when every lane is done, so a crash redelivers the batch (the inbox skips
        what was applied)."""
        lanes: dict[bytes | None, list[tuple[object, Envelope]]] = {}
        for record, envelope in await self._decode(msg.raw_message):
            lanes.setdefault(record.key, []).append((record, envelope))
        outcomes = await asyncio.gather(*(self._run_lane(lane) for lane in lanes.values()), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the broker is away (even the DLQ): the batch comes again

    async def _run_lane(self, lane: list[tuple[object, Envelope]]) -> None:
        async with self._lane_slots:
            for record, envelope in lane:
                with self._handling(record, envelope):
                    await self._apply_with_retries(record, envelope)

    async def _on_batch(self, msg: KafkaMessage) -> None:
        decoded = await self._decode(msg.raw_message)
        if not decoded:
            return
        try:
            await self.apply_batch([envelope for _, envelope in decoded])
            return
        except Exception:
            log.warning("a batch of %d events failed; applying them one by one", len(decoded), exc_info=True)
        for record, envelope in decoded:  # isolates the event that fails, which alone goes to the DLQ
            with self._handling(record, envelope):
                await self._apply_with_retries(record, envelope)

    def _observe_queue_time(self, record, envelope: Envelope) -> None:
        waited = (datetime.now(UTC) - envelope.time).total_seconds()
        telemetry.QUEUE_SECONDS.labels(self.service, record.topic).observe(max(0.0, waited))

    async def apply_batch(self, envelopes: list[Envelope]) -> list[Envelope]:
        """Apply a batch in one transaction; returns the envelopes that had not been applied."""
        with telemetry.timed_stage(self.service, "apply_batch"):
            return await retry_races(lambda: self._apply_batch_once(envelopes))

    async def _apply_batch_once(self, envelopes: list[Envelope]) -> list[Envelope]:
        outgoing: list[Envelope] = []
        async with self.pool.connection() as conn:
            async with conn.transaction():
                fresh = await record_applied_many(conn, envelopes)
                if not fresh:
                    return []

                async def publish(caused: list[tuple[Event, Envelope]]) -> None:
                    batch = [envelop(event, f"/genline/{self.service}", cause=cause) for event, cause in caused]
                    await add_many_to_outbox(conn, batch, self.settings.topic_namespace)
                    outgoing.extend(batch)

                await self.batch_handler(conn, fresh, publish)
        for envelope in fresh:
            telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "applied").inc()
            with telemetry.job_context(envelope.subject, envelope.tenant_id, envelope.traceparent):
                log.info("applied %s", envelope.type)
        if outgoing:
            self.relay.notify()
        return fresh

    @contextlib.contextmanager
    def _handling(self, record, envelope: Envelope) -> Iterator[None]:
        """Logs name the job, tenant and trace (and know its prompt, to redact it); a consumer
        span continues the event's trace."""
        spec = getattr(envelope.event, "job", None)
        with (telemetry.job_context(envelope.subject, envelope.tenant_id, envelope.traceparent,
                                    getattr(spec, "prompt", None)),
              tracing.continued(envelope.traceparent, f"{record.topic} process", SpanKind.CONSUMER)):
            yield

    async def _apply_with_retries(self, record, envelope: Envelope) -> None:
        s = self.settings
        for attempt in range(1, s.consumer_max_attempts + 1):
            try:
                await self.apply(envelope)
                return
            except Exception as exc:
                log.warning("handling %s failed (attempt %d): %s", envelope.type, attempt, exc, exc_info=True)
                if isinstance(exc, PermanentError) or attempt == s.consumer_max_attempts:
                    await self._dead_letter(record, exc, attempts=attempt)
                    return
                backoff = min(s.consumer_backoff_max_s, s.consumer_backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(backoff * (0.5 + random.random()))

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event in one transaction; returns False when it had been applied before."""
        if self.batch_handler and isinstance(envelope.event, self.batch_types):
            return bool(await self.apply_batch([envelope]))
        handler, prepare = self.handlers[type(envelope.event)], self.preparers.get(type(envelope.event))
        prepared = None
        if prepare:  # not for an event applied before; and no connection is held meanwhile
            async with self.pool.connection() as conn:
                if await already_applied(conn, envelope.id):
                    telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "duplicate").inc()
                    return False
            prepared = await prepare(envelope)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                if not await record_applied(conn, envelope):
                    telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "duplicate").inc()
                    return False
                ctx = HandlerContext(conn, envelope, f"/genline/{self.service}", self.settings.topic_namespace,
                                     prepared=prepared)
                with telemetry.timed_stage(self.service, f"apply:{envelope.type}"):
                    await handler(ctx, envelope.event)
        telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "applied").inc()
        log.info("applied %s", envelope.type)
        if ctx.emitted:
            self.relay.notify()
        for callback in ctx.committed:
            callback()
        return True

    async def _dead_letter(self, record, exc: Exception, attempts: int) -> None:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        headers |= {
            "genline_error": f"{type(exc).__name__}: {exc}"[:2000],
            "genline_consumer": self.group_id,
            "genline_attempts": str(attempts),
            "genline_source_offset": f"{record.topic}/{record.partition}/{record.offset}",
        }
        await self.broker.publish(record.value, dead_letter_topic(record.topic), key=record.key, headers=headers)
        telemetry.DLQ_MESSAGES.labels(self.service, record.topic).inc()
        log.error("sent %s/%s/%s to the DLQ after %d attempts: %s", record.topic, record.partition, record.offset, attempts, exc)
