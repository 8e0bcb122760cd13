"""The transactional outbox: events added in the transaction that changes state, and the
relay that publishes them once committed and keeps them as the service's journal
(journal.py). No dual writes: nothing is published that was not committed."""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from pydantic_core import to_json

from services.common import telemetry
from services.common.bus import kafka_admin
from services.common.bus.envelope import FLOOR, JOURNALED_AT, Envelope, ce_headers
from services.common.bus.journal import (
    BUS_FENCE,
    BrokerChanged,
    Journal,
    LogLost,
    Recovery,
    outbox_lock,
    relay_lock,
)
from services.common.bus.journal_tables import ServiceSchema
from services.common.bus.kafka_security import client_options, compression
from services.common.bus.wake import END_SEPARATOR, PARTITION_SEPARATOR, TOPIC_SEPARATOR, bus_channel
from services.common.bus.writing import EventWriter
from services.common.db import Conn, Statement, insert_many, inserted
from services.common.listening import Channel, listen
from services.common.supervision import failed, goodbye, stop_tasks, supervise

log = logging.getLogger(__name__)

OUTBOX_INSERT = ("INSERT INTO outbox (event_id, event_type, topic, record_key, headers, body)"
                 " VALUES (%s, %s, %s, %s, %s, %s)")
# The same as the head of an `INSERT … SELECT` (its values typed): a statement that adds the
# event only where rows of its own say so selects it FROM them (… FROM claimed WHERE …).
OUTBOX_INSERT_SELECT = ("INSERT INTO outbox (event_id, event_type, topic, record_key, headers, body)"
                        " SELECT %s::uuid, %s::text, %s::text, %s::bytea, %s::jsonb, %s::bytea")


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    """An event as the relay will publish it: what a service's statement adds to the outbox
    (staged_event), its fields in the outbox's column order."""

    event_id: str
    event_type: str
    topic: str
    record_key: bytes | None
    headers: str  # JSON text
    body: bytes

    @property
    def values(self) -> tuple[Any, ...]:
        return astuple(self)


def outbox_row(envelope: Envelope, writer: EventWriter) -> OutboxRow:
    """The record as the relay will publish it (tests/common/test_envelope.py holds it equal to
    `to_kafka`): its headers as JSON text (pydantic's compiled encoder, a fifth of the
    standard library's time on every event), its body the event's JSON as the writer's
    readers read it (writing.py)."""
    return OutboxRow(event_id=envelope.id, event_type=envelope.type, topic=envelope.event.topic(writer.namespace),
                     record_key=envelope.key, headers=to_json(ce_headers(envelope)).decode(),
                     body=writer.body(envelope.event))


async def add_to_outbox(conn: Conn, envelope: Envelope, *, writer: EventWriter) -> None:
    await conn.execute(OUTBOX_INSERT, outbox_row(envelope, writer).values)


def staged_event(row: OutboxRow, from_rows: str | None = None) -> Statement:
    """The outbox insert of `row` (outbox_row) as a statement of the caller's transaction:
    run alone, or carried as a CTE of the caller's own statement (one round trip where two
    were), so a service adds its event without writing the outbox's SQL. With `from_rows`
    (`won`, `claimed WHERE claimed.tries = 1`), the event is added only where the caller's
    own rows say so (once per row they yield)."""
    return OUTBOX_INSERT_SELECT + (f" FROM {from_rows}" if from_rows else ""), list(row.values)


OUTBOX_COLUMNS = {"event_id": "uuid", "event_type": "text", "topic": "text", "record_key": "bytea",
                  "headers": "jsonb", "body": "bytea"}


async def add_many_to_outbox(conn: Conn, envelopes: list[Envelope], *, writer: EventWriter) -> None:
    await insert_many(conn, "outbox", columns=OUTBOX_COLUMNS, rows=[outbox_row(e, writer).values for e in envelopes])


def outbox_statement(envelopes: list[Envelope], writer: EventWriter) -> Statement | None:
    """The insert of `envelopes`, to send with other writes (db.together); None for none."""
    return inserted("outbox", OUTBOX_COLUMNS, rows=[outbox_row(e, writer).values for e in envelopes])


# Where a prompt sits in the events that carry one: a JobSpec (`job`), a job view (`view`).
PROMPT_PATHS = ("{job,prompt}", "{view,prompt}")


async def erase_prompt_from_outbox(conn: Conn, job_id: UUID | str) -> int:
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

# A pass takes the bus fence and its outbox's lock (journal.py), then reads the rows to
# publish, in one statement (relay_pass, migrations/0006_relay_pass.sql) whose read sees what
# a recovery that held the lock committed. It takes none while a rotation is under way.
# Relays of one outbox (the service's replicas) take turns, holding its relay lock: one
# selecting later rows while another still published earlier ones would put a job's later
# events on the topic first. For the same reason a pass waits for a row another transaction
# has locked (a prompt being erased) rather than skipping it.
UNPUBLISHED_ROWS = "SELECT * FROM relay_pass(%s, %s, %s, %s)"
# Published rows keep the partition and offset the broker gave them; each partition's
# highest acknowledged offset is noted (a new partition's with the broker it came from).
MARKED = (
    "WITH acked AS (SELECT * FROM unnest(%(seqs)s::bigint[], %(partitions)s::int[], %(offsets)s::bigint[])"
    "  AS a(seq, part, off)),"
    " marked AS (UPDATE outbox o SET published_at = now(), partition = a.part, \"offset\" = a.off FROM acked a"
    "  WHERE o.seq = a.seq RETURNING o.topic, a.part, a.off),"
    " highest AS (SELECT topic, part, max(off) AS off FROM marked GROUP BY topic, part)")
NOTE_PARTITIONS = (
    " INSERT INTO outbox_partitions AS p (topic, partition, broker, acked_through)"
    " SELECT topic, part, %(broker)s, off FROM highest"
    " ON CONFLICT (topic, partition) DO UPDATE SET acked_through = greatest(p.acked_through, excluded.acked_through)")
MARK_PUBLISHED = MARKED + NOTE_PARTITIONS
# The same, announcing each topic published to, with where each of its partitions now ends
# (wake.py, `announcement`), once the transaction commits.
MARK_AND_ANNOUNCE = (
    MARKED + ", noted AS (" + NOTE_PARTITIONS + ")"
    " SELECT pg_notify(%(channel)s, topic || %(topic_sep)s"
    "  || string_agg(part || %(end_sep)s || (off + 1), %(partition_sep)s ORDER BY part))"
    " FROM highest GROUP BY topic")


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

    def __init__(self, schema: ServiceSchema, journal: Journal) -> None:
        self.pool, self.settings, self.service, self.journal = schema.pool, schema.settings, schema.name, journal
        self.poll_interval_s = schema.settings.outbox_poll_interval_s
        self.database_url = schema.database_url
        self.observers: list[Callable[[str, bytes], None]] = []
        self._producer: AIOKafkaProducer | None = None
        self._verified: frozenset[object] = frozenset()  # the broker connections the journal's broker answered on
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
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
        self._task = supervise(f"{self.service}-outbox-relay", self._run)
        self._watcher = supervise(f"{self.service}-journal", self._watch)
        if self.database_url:
            self._listener = supervise(f"{self.service}-outbox-listen", self._listen_for_commits)

    async def _listen_for_commits(self) -> None:
        # The poll carries on while the database is away.
        if self.database_url is None:
            return
        def on_notify(_payload: str | None) -> None:
            self._listening = True  # (re)connected or notified: every commit from now on is announced
            self._wake.set()

        def on_lost() -> None:
            self._listening = False

        await listen(Channel(self.database_url, outbox_channel(self.service), self.poll_interval_s), on_notify, on_lost=on_lost)

    async def stop(self, grace_s: float = 15) -> None:
        """Publish what is committed, then stop; never cancel a send half-way (what is left
        after the grace period is relayed by the next start)."""
        await stop_tasks(self._listener, self._watcher)
        if self._task:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                log.warning("outbox relay did not drain in %ss; the next start relays the rest", grace_s)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await goodbye("the outbox's journal", self.journal.close())
        if self._producer is not None:
            await goodbye("the outbox's producer", self._producer.stop())
            self._producer = None

    async def _run(self) -> None:
        woken = True
        while True:
            # Only a pass that began after stop() was asked is sure to see every row committed
            # before it; a pass already running may have selected just before such a commit.
            stopping = self._stopping
            # A pass the poll interval started has its statements counted apart: it comes with time.
            with telemetry.counted_for(None if woken else f"{self.service}-outbox-poll"):
                relayed = await self._relay_all()
            if stopping and relayed:  # stop() gives up after its grace period
                return
            try:
                woken = await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except TimeoutError:
                woken = False
            self._wake.clear()

    async def _relay_all(self) -> bool:
        """Publish every row committed, batch after batch; False when the broker or the
        database is away (the rows are kept, the backlog counted, and tried again later)."""
        try:
            while await self.relay_batch() == RELAY_BATCH:
                if time.monotonic() - self._backlog_counted_at >= BACKLOG_COUNT_INTERVAL_S:
                    await self.measure_backlog()
            # A short batch took every row committed before it (but those another replica
            # is publishing): no backlog, and no query to count it on every commit.
            telemetry.OUTBOX_PENDING.labels(self.service).set(0)
            return True
        except Exception:
            failed(f"{self.service}-outbox-relay")
            await self.measure_backlog()
            return False

    async def _watch(self) -> None:
        """The journal's periodic look (journal.Journal.tick), which also notices a broker
        replaced while the relay had nothing to publish."""
        while True:
            await asyncio.sleep(self.settings.bus_check_interval_s)
            try:  # a recovery that fails is tried again at the next look, never ends the looking
                producer = await self.producer()
                try:
                    with telemetry.counted_for(f"{self.service}-journal"):
                        await self.verify_broker(producer, recheck=True)
                        await self.journal.tick(producer.client)
                except BrokerChanged as changed:
                    await self._recover(changed)
            except Exception:
                failed(f"{self.service}-journal")

    async def measure_backlog(self) -> int | None:
        """Count the rows still to publish, also (above all) while the broker is away."""
        try:
            async with self.pool.connection(timeout=5) as conn:
                [row] = await (await conn.execute(
                    "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")).fetchall()
        except Exception:  # the database is away too: the last value stands
            log.warning("cannot count the outbox backlog", exc_info=True)
            return None
        backlog: int = row["n"]
        telemetry.OUTBOX_PENDING.labels(self.service).set(backlog)
        self._backlog_counted_at = time.monotonic()
        return backlog

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**client_options(self.settings), acks="all",
                                        enable_idempotence=self.settings.kafka_idempotent_producer,
                                        compression_type=compression(self.settings),
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
        await self.journal.recover((await self.producer()).client, changed.broker, how=Recovery(rebuild=lost, if_lost=lost))
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
        # Not pipelined: psycopg's pipeline mode saves BEGIN's round trip but costs the relay more
        # CPU than that (a pass of a locking read and an update: 0.35-0.38 ms of its CPU plain, 0.51 pipelined).
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (await conn.execute(UNPUBLISHED_ROWS, [BUS_FENCE, outbox_lock(self.service),
                                                                 relay_lock(self.service), limit])).fetchall()
            telemetry.RELAY_PASSES.labels(self.service, "yes" if rows else "no").inc()
            if not rows:
                return 0
            await self.verify_broker(producer)
            # Sent in order (a partition keeps it), acknowledged together so that the producer
            # batches them; a row is marked published only once the broker acknowledged it.
            sent = [await producer.send(row["topic"], bytes(row["body"]), key=_key(row["record_key"]),
                                        headers=_headers(row)) for row in rows]
            acks = await asyncio.gather(*sent)
            await conn.execute(MARK_AND_ANNOUNCE if self.settings.bus_wake_on_publish else MARK_PUBLISHED,
                               {"seqs": [r["seq"] for r in rows], "partitions": [a.partition for a in acks],
                                "offsets": [a.offset for a in acks], "broker": self.journal.broker,
                                "channel": bus_channel(self.settings.topic_namespace),
                                "topic_sep": TOPIC_SEPARATOR, "partition_sep": PARTITION_SEPARATOR,
                                "end_sep": END_SEPARATOR})
        telemetry.OUTBOX_RELAYED.labels(self.service).inc(len(rows))
        for observe in self.observers:
            for row in rows:
                observe(row["event_type"], bytes(row["body"]))
        return len(rows)


def _headers(row: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The event's CloudEvents headers, and what the journal says of it: when its row was
    written, and the floor below which nothing is ever published again (journal.py)."""
    headers = [(k, v.encode()) for k, v in row["headers"].items()]
    headers.append((JOURNALED_AT, row["created_at"].isoformat().encode()))
    if row["floor"] is not None:
        headers.append((FLOOR, row["floor"].isoformat().encode()))
    return headers


def _key(record_key: bytes | memoryview | None) -> bytes | None:
    return bytes(record_key) if record_key is not None else None
