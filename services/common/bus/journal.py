"""The outbox as the service's journal, and a bus that outlives its broker's log.

PostgreSQL is the record and the broker the transport. An outbox row stays after it is
published, with the partition and offset the broker acknowledged, for its topic's retention
window (the ledger's for ever): the journal that replays and audits read. `outbox_partitions`
keeps, for each partition the service publishes to, the broker its offsets came from, where its
log starts, the highest offset acknowledged, its end as last seen and how far every group
reading it has committed. On top of that, four things keep the bus whole:

1. The broker lost its log (restarted empty, restored empty): it answers with another cluster
   id. The relay stops publishing (`BrokerChanged`) and recovers: a gap moves each partition's
   next offset past anything the old log can have reached (kafka_admin.produce_gap), so a
   reader standing anywhere in the old log reads on from the first new record and never skips
   one; then every row a reader may not have applied is queued again, in its original order,
   before anything newer. The inboxes skip what was applied already.
2. Rotation. A broker that keeps its whole log (Tansu's in-memory one) makes every fetch cost
   more as a partition grows. Once a partition of the service's topic holds
   `bus_rotate_after_records` and every reader group has committed its end, the topic is
   deleted and created again, each partition opened by a gap up to its old end: readers go on
   from where they stood, nothing is lost or repeated.
3. Retention. Published rows older than the topic's window, and read by every group, are
   pruned; the horizon is kept, so that a replay knows what the journal no longer holds.
4. The floor. A recovery or `genline bus rebuild --all` publishes again only rows created at
   or after the journal's floor, which rises to a checkpoint once every reader group has read
   past it, and never closer to now than the republish window (`bus_republish_window_s`).
   The relay stamps the floor, and each row's own creation time, on what it sends
   (`genline_floor`, `genline_journaled_at`): a reader's inbox forgets an event once a floor
   from its topic has passed it, for nothing can bring that event again (inbox.py).
   A checkpoint is a time and, per partition, the highest offset acknowledged: it is taken in
   one statement that sees no unpublished row created before its time, and its time is no
   later than the start of any transaction then running (a row is created at its
   transaction's start), so every row created before it was published at or below those
   offsets. A recovery drops the checkpoint under way: the rows it queues again get new
   offsets.

Locks: every relay pass holds, for its transaction, the bus fence and its outbox's lock, both
shared, and its outbox's relay lock exclusively (the service's replicas take turns). Whoever
replaces the broker (genline_stack) holds the fence exclusively, and a recovery or a rotation
holds the outbox's lock exclusively: no row is published meanwhile.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from services.common.bus import journal_tables, kafka_admin
from services.common.bus.journal_tables import Partition, ServiceSchema, read_partitions, write_partitions
from services.common.bus.kafka_security import client_options, new_topic
from services.common.db import Conn, advisory_key

log = logging.getLogger(__name__)

# Offsets a lost log may have reached beyond what this service last saw of it (sends whose
# acknowledgement never reached it, other writers since its last look): the gap after a loss
# goes this far past.
LOSS_MARGIN = 1_000_000
# A rotation is tried only when no reader is more behind than this share of the limit, or
# than a live reader's commits lag (a reader that is down falls further behind).
ROTATION_LAG_SHARE = 0.1
ROTATION_LAG_MIN = 100
# After a rotation that could not wait for its readers, the next try comes this much later.
ROTATION_BACKOFF_S = 60.0
PRUNE_INTERVAL_S = 60.0
PRUNE_BATCH = 5_000
# A checkpoint's time stays at least this far behind the database's clock.
FLOOR_MARGIN_S = 60.0
# The floor is looked at this often: it trails a window of days, and each look costs three
# statements.
FLOOR_INTERVAL_S = 30.0
LOCK_TIMEOUT = "60s"


# Held exclusively while the broker is replaced; shared by every relay pass.
BUS_FENCE = advisory_key("genline.bus.fence")


def outbox_lock(schema: str) -> int:
    return advisory_key(f"genline.outbox.{schema}")


def relay_lock(schema: str) -> int:
    """Held by the one relay pass of an outbox under way (outbox.py)."""
    return advisory_key(f"genline.outbox.{schema}.relay")


class BrokerChanged(Exception):
    """The broker answering is not the one the journal's offsets came from."""

    def __init__(self, broker: str) -> None:
        super().__init__(f"the broker answering ({broker}) is not the one the journal's offsets came from")
        self.broker = broker


class LogLost(BrokerChanged):
    """The same broker, but a partition of the service's topic ends below what it
    acknowledged: the topic was deleted, or the broker restored empty under its old id."""


@dataclass(frozen=True)
class Recovery:
    """Which rows a recovery queues again, and when it runs. `rebuild`: an operator's order
    (`genline bus rebuild`), so it runs though the broker did not change. `everything`: every
    row the journal holds, not only those a reader may lack.
    `if_lost`: only if a partition of the owned topic still ends below what it acknowledged
    once the lock is held (a rotation by another replica looks like a loss while it runs)."""

    rebuild: bool = False
    everything: bool = False
    if_lost: bool = False


class Journal:
    """One service's outbox seen as a journal (see the module's account). `owned_topic` is the
    topic the service owns, which it alone rotates; `readers` the consumer groups reading it."""

    def __init__(self, schema: ServiceSchema, owned_topic: str | None = None, *, readers: tuple[str, ...] = ()) -> None:
        self.pool, self.database_url, self.schema, self.settings = (schema.pool, schema.database_url, schema.name,
                                                                    schema.settings)
        self.owned_topic, self.readers = owned_topic, readers
        self.broker: str | None = None  # the cluster id the journal's offsets belong to
        self._admin: AIOKafkaAdminClient | None = None
        self._next_rotation_try = 0.0
        self._next_prune = 0.0
        self._next_floor = 0.0

    @property
    def topic(self) -> str:
        """The topic the service owns: only a journal that owns one watches, rotates and raises its floor."""
        if self.owned_topic is None:
            raise RuntimeError(f"the journal of {self.schema} owns no topic")
        return self.owned_topic

    async def partitions(self, topic: str | None = None) -> dict[tuple[str, int], Partition]:
        async with self.pool.connection() as conn:
            return await read_partitions(conn, topic)

    async def recorded_broker(self) -> str | None:
        """The broker the journal's offsets came from; None before anything was published,
        "" when a recovery stopped half-way (so that it runs again)."""
        brokers = {p.broker for p in (await self.partitions()).values() if p.broker is not None}
        return brokers.pop() if len(brokers) == 1 else ("" if brokers else None)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Conn]:
        """The outbox's lock exclusively and the bus fence shared, on a connection of its own
        (the pool's serve the passes this holds off), until the block ends."""
        async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True,
                                                         row_factory=psycopg.rows.dict_row) as conn:
            await conn.execute(f'SET search_path TO "{self.schema}"')
            await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute("SELECT pg_advisory_lock_shared(%s), pg_advisory_lock(%s)",
                               [BUS_FENCE, outbox_lock(self.schema)])
            try:
                yield conn
            finally:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("SELECT pg_advisory_unlock_all()")

    async def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**client_options(self.settings),
                                        request_timeout_ms=self.settings.bus_send_timeout_ms)
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def _gap(self, client: AIOKafkaClient, where: TopicPartition, *, span: int) -> None:
        if span <= 0:
            return
        try:
            await kafka_admin.produce_gap(client, where, span=span)
        except KafkaError as exc:  # Apache Kafka refuses control batches from clients
            log.warning("the broker refused a gap on %s/%s (%s): readers standing past its end start over",
                        where.topic, where.partition, exc)

    async def _ensure_topic(self, client: AIOKafkaClient, topic: str, *, count: int) -> list[int]:
        partitions = await kafka_admin.partitions_of(client, topic, fresh=True)
        if not partitions and count:
            await (await self.admin()).create_topics([new_topic(self.settings, topic, partitions=count)])
            partitions = await kafka_admin.partitions_of(client, topic, fresh=True)
        return partitions

    # ---- 1. the broker lost its log ---------------------------------------------------------

    async def recover(self, client: AIOKafkaClient, broker: str, *, how: Recovery = Recovery()) -> int:
        """Open each partition past the lost log and queue again the rows a reader may lack
        (Recovery says which, and when); returns how many were queued."""
        async with self.exclusive() as conn:
            known = await read_partitions(conn)
            if not how.rebuild and known and all(p.broker == broker for p in known.values()):
                self.broker = broker  # another replica recovered meanwhile
                return 0
            pending_rotation = any(row.rotate_to is not None for row in known.values())
            if how.if_lost and (pending_rotation or not await self._below_acknowledged(client, known)):
                return 0
            topics = sorted({topic for topic, _ in known} | ({self.owned_topic} if self.owned_topic else set()))
            opened: list[Partition] = []
            for topic in topics:
                opened += [replace(p, broker=broker) for p in await self._open_after_loss(client, topic, known=known)]
            async with conn.transaction():
                # Never below the floor: every reader read those rows, and may have forgotten them.
                queued = await conn.execute(
                    f"UPDATE outbox o SET published_at = NULL WHERE {journal_tables.NOT_BELOW_FLOOR}" if how.everything else
                    "UPDATE outbox o SET published_at = NULL FROM outbox_partitions p"
                    " WHERE p.topic = o.topic AND p.partition = o.partition AND o.published_at IS NOT NULL"
                    f" AND o.\"offset\" >= coalesce(p.consumed_through, 0) AND {journal_tables.NOT_BELOW_FLOOR}")
                await conn.execute("UPDATE journal_floor SET checkpoint_at = NULL")  # its offsets are of the old log
                await conn.execute(f"NOTIFY \"outbox_{self.schema}\"")  # the relays, wherever they run
                await write_partitions(conn, opened, "broker = excluded.broker", "log_start = excluded.log_start",
                                       "log_end = excluded.log_end", "rotate_to = NULL")
                # A partition the topic no longer has (it came back with fewer) is forgotten:
                # its rows, queued above, go to the partitions their keys map to now, and its
                # acknowledged offset would otherwise read as a loss on every look.
                await conn.execute("DELETE FROM outbox_partitions WHERE topic = ANY(%s) AND (topic, partition)"
                                   " NOT IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
                                   [topics, [p.topic for p in opened], [p.partition for p in opened]])
        self.broker = broker
        log.warning("%s (broker %s): %d rows queued again for %s", "rebuilt" if how.rebuild else "the broker lost its log",
                    broker, queued.rowcount, ", ".join(topics))
        return queued.rowcount

    async def _open_after_loss(self, client: AIOKafkaClient, topic: str,
                               *, known: dict[tuple[str, int], Partition]) -> list[Partition]:
        """The topic's partitions opened past what was known of them (the broker's id is the
        caller's to note)."""
        written = sorted(p for t, p in known if t == topic)
        partitions = await self._ensure_topic(client, topic, count=max(written, default=-1) + 1)
        if topic != self.owned_topic:  # another service's topic: only where this one wrote
            partitions = [p for p in partitions if p in written]
        ends = await kafka_admin.high_watermarks(client, topic, partitions=partitions)
        opened = []
        for partition in partitions:
            reach = (known.get((topic, partition)) or Partition(topic=topic, partition=partition)).reach()
            start = max(ends[partition], reach + LOSS_MARGIN if reach else 0)
            await self._gap(client, TopicPartition(topic, partition), span=start - ends[partition])
            opened.append(Partition(topic=topic, partition=partition, log_start=start, log_end=start))
        return opened

    # ---- the periodic look: readers, rotation, pruning -----------------------------------------

    async def tick(self, client: AIOKafkaClient) -> None:
        """Note where the service's topic ends and how far its readers are; finish a rotation a
        crash interrupted, or rotate when due; prune when due."""
        if self.owned_topic and self.broker:
            # What was acknowledged is read before where the partitions end: a healthy log
            # ends past it whatever was published in between.
            acked = await self.partitions(self.owned_topic)
            if any(row.rotate_to is not None for row in acked.values()):
                await self.rotate(client)  # a rotation a crash cut short: its topic looks lost until it is done
                return
            starts, ends, committed = await self.observe(client)
            if journal_tables.ends_below(acked, ends):
                raise LogLost(self.broker)
            if self._rotation_due(starts, ends, committed=committed):
                await self.rotate(client)
            if time.monotonic() >= self._next_floor:
                self._next_floor = time.monotonic() + FLOOR_INTERVAL_S
                await self.advance_floor()
        if self.settings.outbox_retention_s is not None and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
            await self.prune()

    async def observe(self, client: AIOKafkaClient) -> tuple[dict[int, int], dict[int, int], dict[str, dict[int, int]]]:
        """Each partition's start and end, and each reader's committed offsets, noted."""
        topic = self.topic
        partitions = await kafka_admin.partitions_of(client, topic)
        ends = await kafka_admin.high_watermarks(client, topic, partitions=partitions)
        committed = await self.committed(topic, partitions)
        rows = [Partition(topic=topic, partition=p, broker=self.broker, log_end=end, consumed_through=journal_tables.read_by_all(p, committed))
                for p, end in ends.items()]
        async with self.pool.connection() as conn:
            await write_partitions(conn, rows, "log_end = excluded.log_end", journal_tables.KEEP_READ)
            known = await read_partitions(conn, topic)
        return {p: known[(topic, p)].log_start for p in ends}, ends, committed

    async def _below_acknowledged(self, client: AIOKafkaClient, known: dict[tuple[str, int], Partition]) -> bool:
        if self.owned_topic is None:
            return False
        mine = {key: row for key, row in known.items() if key[0] == self.owned_topic}
        partitions = await kafka_admin.partitions_of(client, self.owned_topic)
        ends = await kafka_admin.high_watermarks(client, self.owned_topic, partitions=partitions) if partitions else {}
        return journal_tables.ends_below(mine, ends)

    async def committed(self, topic: str, partitions: list[int]) -> dict[str, dict[int, int]]:
        admin = await self.admin()
        on = [TopicPartition(topic, p) for p in partitions]
        return {group: await kafka_admin.committed_offsets(admin, group, partitions=on) for group in self.readers}

    def _rotation_due(self, starts: dict[int, int], ends: dict[int, int], *, committed: dict[str, dict[int, int]]) -> bool:
        limit = self.settings.bus_rotate_after_records
        if not limit or time.monotonic() < self._next_rotation_try:
            return False
        if not any(end - starts[p] >= limit for p, end in ends.items()):
            return False
        slack = max(ROTATION_LAG_MIN, int(limit * ROTATION_LAG_SHARE))
        return journal_tables.lag(starts, ends, committed=committed) <= slack

    # ---- 2. rotation ----------------------------------------------------------------------------

    async def rotate(self, client: AIOKafkaClient) -> bool:
        """Start the service's topic on a new, empty log whose offsets go on from the old end,
        or finish a rotation a crash interrupted. False when the readers did not catch up in
        time; nothing was changed then."""
        topic = self.topic
        async with self.exclusive() as conn:
            known = {p: row for (_, p), row in (await read_partitions(conn, topic)).items()}
            targets = {p: row.rotate_to for p, row in known.items() if row.rotate_to is not None}
            if not targets:
                partitions = await kafka_admin.partitions_of(client, topic)
                ends = await kafka_admin.high_watermarks(client, topic, partitions=partitions)
                starts = {p: known[p].log_start if p in known else 0 for p in partitions}
                if not await self._wait_until_read(topic, ends, starts=starts):
                    self._next_rotation_try = time.monotonic() + ROTATION_BACKOFF_S
                    log.info("not rotating %s yet: its readers did not catch up", topic)
                    return False
                targets = ends
                # Noted before the topic goes, so that a crash from here on is finished later.
                await write_partitions(conn, [Partition(topic=topic, partition=p, broker=self.broker, rotate_to=end)
                                              for p, end in targets.items()], "rotate_to = excluded.rotate_to")
                await kafka_admin.recreate_topic(await self.admin(), new_topic(self.settings, topic, partitions=len(targets)))
            await self._open_at(client, topic, targets=targets)
            await write_partitions(conn, [Partition(topic=topic, partition=p, log_start=end, log_end=end, consumed_through=end)
                                          for p, end in targets.items()],
                                   "rotate_to = NULL", "log_start = excluded.log_start", "log_end = excluded.log_end",
                                   journal_tables.KEEP_READ, "rotations = outbox_partitions.rotations + 1")
        log.info("rotated %s: its partitions start again at %s", topic, targets)
        return True

    async def _wait_until_read(self, topic: str, ends: dict[int, int], *, starts: dict[int, int]) -> bool:
        deadline = time.monotonic() + self.settings.bus_rotation_wait_s
        while True:
            committed = await self.committed(topic, list(ends))
            if journal_tables.lag(starts, ends, committed=committed) == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)

    async def _open_at(self, client: AIOKafkaClient, topic: str, *, targets: dict[int, int]) -> None:
        """Each partition of the (re-created) topic opened by a gap up to its target offset."""
        await self._ensure_topic(client, topic, count=len(targets))
        ends = await kafka_admin.high_watermarks(client, topic, partitions=list(targets))
        for partition, target in targets.items():
            await self._gap(client, TopicPartition(topic, partition), span=target - ends[partition])

    # ---- 3. retention ---------------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete published rows older than the retention window that every reader has read,
        oldest first; returns how many went."""
        pruned = 0
        async with self.pool.connection() as conn:
            while True:
                asked = {"batch": PRUNE_BATCH, "retention": self.settings.outbox_retention_s}
                [row] = await (await conn.execute(journal_tables.PRUNE_PUBLISHED, asked)).fetchall()
                gone: int = row["n"]
                pruned += gone
                if gone == 0:
                    return pruned

    # ---- 4. the floor ----------------------------------------------------------------------------

    async def advance_floor(self) -> None:
        """Raise the floor to the checkpoint under way once every reader has read past it;
        then, with none under way, take the next."""
        window = self.settings.bus_republish_window_s
        if window is None:
            return
        async with self.pool.connection() as conn:
            # Read before the checkpoint's statement: a transaction that ends in between
            # committed before that statement's snapshot, which then sees its rows.
            [oldest] = await (await conn.execute(journal_tables.OLDEST_TRANSACTION)).fetchall()
            async with conn.transaction():
                [pending] = await (await conn.execute("SELECT checkpoint_at FROM journal_floor FOR UPDATE")).fetchall()
                if pending["checkpoint_at"] is not None and not (
                        await conn.execute(journal_tables.RAISE_FLOOR, {"window": window})).rowcount:
                    return
                await conn.execute(journal_tables.TAKE_CHECKPOINT, {"running": oldest["at"], "margin": FLOOR_MARGIN_S})

    async def floor(self) -> datetime | None:
        async with self.pool.connection() as conn:
            [row] = await (await conn.execute("SELECT floor FROM journal_floor")).fetchall()
        floor: datetime | None = row["floor"]
        return floor
