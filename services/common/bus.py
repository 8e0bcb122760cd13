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
from functools import partial
from itertools import chain
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool

from services.common import kafka_admin, telemetry, tracing
from services.common.contracts import Event, consumer_group, dead_letter_topic
from services.common.db import insert_many, listen
from services.common.envelope import Envelope, MalformedEnvelope, envelop, from_kafka, to_kafka
from services.common.wake import FetchWaker, bus_channel
from services.common.journal import BUS_FENCE, BrokerChanged, Journal, LogLost, outbox_lock

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

# A pass takes the bus fence and its outbox's lock (journal.py) first, in a statement of its
# own: the rows' statement then sees what a recovery that held the lock committed. It takes
# none while a rotation is under way.
FENCE = "SELECT pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock_shared(%s)"
UNPUBLISHED_ROWS = (
    "SELECT seq, event_type, topic, record_key, headers, body FROM outbox"
    " WHERE published_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_partitions WHERE rotate_to IS NOT NULL)"
    " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED")
# Published rows keep the partition and offset the broker gave them; each partition's
# highest acknowledged offset is noted (a new partition's with the broker it came from).
MARK_PUBLISHED = (
    "WITH acked AS (SELECT * FROM unnest(%(seqs)s::bigint[], %(partitions)s::int[], %(offsets)s::bigint[])"
    "  AS a(seq, part, off)),"
    " marked AS (UPDATE outbox o SET published_at = now(), partition = a.part, \"offset\" = a.off FROM acked a"
    "  WHERE o.seq = a.seq RETURNING o.topic, a.part, a.off)"
    " INSERT INTO outbox_partitions AS p (topic, partition, broker, acked_through)"
    " SELECT topic, part, %(broker)s, max(off) FROM marked GROUP BY topic, part"
    " ON CONFLICT (topic, partition) DO UPDATE SET acked_through = greatest(p.acked_through, excluded.acked_through)")
# The same, announcing each topic published to (wake.py), once the transaction commits.
MARK_AND_ANNOUNCE = MARK_PUBLISHED.replace(
    " FROM marked GROUP BY", " FROM marked, LATERAL (SELECT pg_notify(%(channel)s, marked.topic)) AS said GROUP BY")


def outbox_channel(schema: str) -> str:
    """The channel the outbox's trigger notifies when a transaction that added rows commits."""
    return f"outbox_{schema}"


class OutboxRelay:
    """Publishes committed outbox rows in order, and keeps them as the service's journal
    (journal.py): each row's partition and offset, the broker they came from, and what to do
    when that broker is replaced. Wakes on a commit anywhere that added rows (PostgreSQL
    NOTIFY, when `database_url` is given: this process, another replica, a CLI), on
    `notify()` (this process committed) while no such listener is connected, and every poll
    interval as a safety net.

    `observers` are called with (event type, JSON body) of every row once it is published,
    which is how a service counts what it announced (the ledger's credits)."""

    def __init__(self, pool: AsyncConnectionPool, settings, schema: str, journal: Journal,
                 database_url: str | None = None):
        self.pool, self.settings, self.service, self.journal = pool, settings, schema, journal
        self.poll_interval_s = settings.outbox_poll_interval_s
        self.database_url = database_url
        self.observers: list[Callable[[str, bytes], None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._verified: frozenset = frozenset()  # the broker connections the journal's broker answered on
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
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
        self._watcher = asyncio.create_task(self._watch(), name=f"{self.service}-journal")
        if self.database_url:
            self._listener = asyncio.create_task(self._listen_for_commits(), name=f"{self.service}-outbox-listen")

    async def _listen_for_commits(self) -> None:
        # The poll carries on while the database is away.
        def on_notify(_payload: str | None) -> None:
            self._listening = True  # (re)connected or notified: every commit from now on is announced
            self._wake.set()

        def on_lost() -> None:
            self._listening = False

        await listen(self.database_url, outbox_channel(self.service), on_notify, self.poll_interval_s, on_lost)

    async def stop(self, grace_s: float = 15) -> None:
        """Publish what is committed, then stop; never cancel a send half-way (what is left
        after the grace period is relayed by the next start)."""
        for task in (self._listener, self._watcher):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._task:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                log.warning("outbox relay did not drain in %ss; the next start relays the rest", grace_s)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self.journal.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

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

    async def _watch(self) -> None:
        """The journal's periodic look (journal.Journal.tick), which also notices a broker
        replaced while the relay had nothing to publish."""
        while True:
            await asyncio.sleep(self.settings.bus_check_interval_s)
            try:
                producer = await self.producer()
                await self.verify_broker(producer, recheck=True)
                await self.journal.tick(producer.client)
            except BrokerChanged as changed:
                await self._recover(changed)
            except Exception:
                log.warning("the journal's look at the broker failed; will retry", exc_info=True)

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

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                        request_timeout_ms=self.settings.bus_send_timeout_ms)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def verify_broker(self, producer: AIOKafkaProducer, recheck: bool = False) -> None:
        """Raise BrokerChanged unless the broker answering is the one the journal's offsets
        came from. Asked again only on a connection made since the last answer: a broker
        that restarted cannot answer on a connection opened before."""
        connections = kafka_admin.connections(producer.client)
        if connections and connections == self._verified and not recheck:
            return
        current = await kafka_admin.cluster_id(producer.client)
        recorded = self.journal.broker if self.journal.broker is not None else await self.journal.recorded_broker()
        if recorded is not None and recorded != current:
            raise BrokerChanged(current)
        self.journal.broker = current
        self._verified = kafka_admin.connections(producer.client)

    async def _recover(self, changed: BrokerChanged) -> None:
        lost = isinstance(changed, LogLost)
        await self.journal.recover((await self.producer()).client, changed.broker, rebuild=lost, if_lost=lost)
        self._verified = frozenset()
        self._wake.set()

    async def relay_batch(self, limit: int = RELAY_BATCH) -> int:
        try:
            return await self._relay_batch(limit)
        except BrokerChanged as changed:
            await self._recover(changed)
            return await self._relay_batch(limit)

    async def _relay_batch(self, limit: int) -> int:
        producer = await self.producer()
        # Pipelined: the transaction's opening statements travel in one round trip.
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            # A pass need not wait for the disk at its commit: a mark lost to a crash only has
            # the rows published again, which the inboxes skip.
            await conn.execute("SET LOCAL synchronous_commit TO off")
            await conn.execute(FENCE, [BUS_FENCE, outbox_lock(self.service)])
            rows = await (await conn.execute(UNPUBLISHED_ROWS, [limit])).fetchall()
            if not rows:
                return 0
            await self.verify_broker(producer)
            # Sent in order (a partition keeps it), acknowledged together so that the producer
            # batches them; a row is marked published only once the broker acknowledged it.
            sent = [await producer.send(row["topic"], bytes(row["body"]), key=_key(row["record_key"]),
                                        headers=[(k, v.encode()) for k, v in row["headers"].items()]) for row in rows]
            acks = await asyncio.gather(*sent)
            await conn.execute(MARK_AND_ANNOUNCE if self.settings.bus_wake_on_publish else MARK_PUBLISHED,
                               {"seqs": [r["seq"] for r in rows], "partitions": [a.partition for a in acks],
                                "offsets": [a.offset for a in acks], "broker": self.journal.broker,
                                "channel": bus_channel(self.settings.topic_namespace)})
        telemetry.OUTBOX_RELAYED.labels(self.service).inc(len(rows))
        for observe in self.observers:
            for row in rows:
                observe(row["event_type"], bytes(row["body"]))
        return len(rows)


def _key(record_key) -> bytes | None:
    return bytes(record_key) if record_key is not None else None


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


# A fetched batch at least this large is checked against the inbox in one query first.
SKIP_CHECK_BATCH = 16


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


class EndWatch:
    """A consumer standing past a partition's end (its broker lost its log without the
    journal's gap, as a restored Apache Kafka cluster would) reads that partition from its
    beginning: waiting for the new log to reach the old offsets would skip its first records.
    The inbox skips what was applied already."""

    def __init__(self, service: str, interval_s: float) -> None:
        self.service, self.interval_s = service, interval_s
        self._kafka = None
        self._task: asyncio.Task | None = None

    def watch(self, kafka) -> None:
        self._kafka = kafka
        if self._task is None:
            self._task = asyncio.create_task(self._every_interval(), name=f"{self.service}-end-watch")

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(KafkaError, AssertionError):  # rebalancing: look again later
                await self.start_over_past_the_end()

    async def start_over_past_the_end(self) -> list[TopicPartition]:
        restarted = []
        for tp in self._kafka.assignment():
            end = self._kafka.highwater(tp)
            if end is not None and await self._kafka.position(tp) > end:
                restarted.append(tp)
        if restarted:
            log.warning("standing past the end of %s (the broker lost its log): reading them from the beginning",
                        restarted)
            await self._kafka.seek_to_beginning(*restarted)
        return restarted

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def take_as_they_come(subscriber, consumer) -> tuple:
    """FastStream's batch subscriber, but without its sleep after a wait that found nothing:
    aiokafka hands records over as soon as a fetch brings them, so the wait costs nothing,
    while records that came during the sleep waited it out (up to a whole batch timeout more
    on every hop)."""
    batches = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records)
    return tuple(chain.from_iterable(batches.values()))


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
        self.end_watch = EndWatch(service, settings.bus_check_interval_s)
        self.subscriber = None
        self.topics: list[str] = []
        self.waker: FetchWaker | None = None

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
        return consumer_group(self.settings.topic_namespace, self.service)

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
        subscriber.get_msg = partial(take_as_they_come, subscriber)
        self.broker, self.subscriber, self.topics = broker, subscriber, topics

    def start_waking(self, database_url: str) -> None:
        """Once the broker has started: fetch when the relays announce (wake.py), if so set."""
        s = self.settings
        if s.bus_wake_on_publish and self.subscriber is not None and self.subscriber.consumer is not None:
            self.waker = FetchWaker(database_url, s.topic_namespace, self.topics, s.bus_idle_fetch_interval_s)
            self.waker.start(self.subscriber.consumer)

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
            self.end_watch.watch(msg.consumer)

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
        for record, envelope in await self._not_applied(await self._decode(msg.raw_message)):
            lanes.setdefault(record.key, []).append((record, envelope))
        outcomes = await asyncio.gather(*(self._run_lane(lane) for lane in lanes.values()), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the broker is away (even the DLQ): the batch comes again

    async def _not_applied(self, decoded: list[tuple[object, Envelope]]) -> list[tuple[object, Envelope]]:
        """A large batch without the events applied before, found in one query: what a
        journal publishes again after a broker lost its log is skipped in batches, not a
        transaction per event. (A small batch is new events, which the inbox insert checks.)"""
        if len(decoded) < SKIP_CHECK_BATCH:
            return decoded
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT event_id FROM inbox WHERE event_id = ANY(%s)",
                                             [[envelope.id for _, envelope in decoded]])).fetchall()
        applied = {row["event_id"] for row in rows}
        for _, envelope in decoded:
            if envelope.id in applied:
                telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "duplicate").inc()
        return [(record, envelope) for record, envelope in decoded if envelope.id not in applied]

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
