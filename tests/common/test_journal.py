"""The outbox as a journal, against a real PostgreSQL and a broker of each test's own: offsets
kept, a broker that restarts empty, topic rotation, a rotation a crash cut short, retention."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from genline_stack.embedded import TOPIC_PARTITIONS, bus_fence, create_topics, start_tansu
from genline_stack.ports import free_port, stop_process
from services.common import telemetry
from services.common.bus import journal as journal_module
from services.common.bus import kafka_admin
from services.common.bus.envelope import envelop
from services.common.bus.rebuild import BusSettings, rebuild, status
from services.common.bus.replay import read_topic_to_end
from services.common.contracts import ReservationRejected, all_topics, consumer_group, topic_of
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import publish_envelopes
from tests.polling import eventually

pytestmark = pytest.mark.processes  # starts the platform's processes or the stack's servers again


def keys_on_every_partition(count: int, partitions: int) -> list[uuid.UUID]:
    """`count` job ids whose records land on every one of the topic's partitions."""
    while True:
        keys = [uuid.uuid4() for _ in range(count)]
        if {DefaultPartitioner()(str(k).encode(), list(range(partitions)), []) for k in keys} == set(range(partitions)):
            return keys


JOBS = keys_on_every_partition(5, TOPIC_PARTITIONS)  # the records' keys


class Broker:
    """A Tansu of the test's own, which it can kill and replace by an empty one."""

    def __init__(self, directory, database_url: str) -> None:
        self.port, self.database_url = free_port(), database_url
        self.log = open(directory / "tansu.log", "ab")
        self.process = start_tansu(self.port, self.log)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart_empty(self, topics: list[str]) -> None:
        """As the embedded stack does: under the bus fence, a new broker and its topics."""
        with bus_fence(self.database_url):
            stop_process(self.process)
            self.process = start_tansu(self.port, self.log)
            asyncio.run(create_topics(self.bootstrap, topics))

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture
def broker(tmp_path, endpoints):
    own = Broker(tmp_path, endpoints.database_url)
    yield own
    own.stop()


@dataclass
class Ledger:
    """A ledger's outbox and relay (no handlers) on its own namespace: it owns the topic
    `<ns>.ledger.v1`, which the groups of `<ns>_ingest` and `<ns>_router` read."""

    runtime: ServiceRuntime
    namespace: str
    granted: int = 0

    @property
    def topic(self) -> str:
        return topic_of("ledger", self.namespace)

    def group(self, reader: str) -> str:
        return consumer_group(self.namespace, f"{self.namespace}_{reader}")

    async def grant(self, count: int) -> None:
        """`count` events, keyed by job in turn, numbered by their `required` amount."""
        async with self.runtime.pool.connection() as conn, conn.transaction():
            for _ in range(count):
                job_id = JOBS[self.granted % len(JOBS)]
                await self.runtime.emit(conn, ReservationRejected(
                    job_id=job_id, tenant_id="t-journal", reason_code="insufficient_credits", reason="numbered",
                    required=self.granted, available=0))
                self.granted += 1
        self.runtime.relay.notify()

    async def rows(self, sql: str, *params) -> list[dict]:
        return await rows_of(self.runtime, sql, *params)

    async def until(self, sql: str, *params, timeout_s: float = 60) -> list[dict]:
        return await rows_until(self.runtime, sql, *params, timeout_s=timeout_s)


async def rows_of(runtime: ServiceRuntime, sql: str, *params) -> list[dict]:
    async with runtime.pool.connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def rows_until(runtime: ServiceRuntime, sql: str, *params, timeout_s: float = 60) -> list[dict]:
    """The rows of `sql` once there are any."""
    return await eventually(lambda: rows_of(runtime, sql, *params), timeout_s, f"no rows: {sql}", pause_s=0.1)


@contextlib.asynccontextmanager
async def ledger_on(endpoints, broker: Broker, **settings):
    namespace = f"j{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap, all_topics(namespace))
    runtime = ServiceRuntime("ledger", settings_for(
        endpoints, kafka_bootstrap=broker.bootstrap, topic_namespace=namespace, schema_name=f"{namespace}_ledger",
        **({"outbox_poll_interval_s": 0.2, "bus_check_interval_s": 0.2, "bus_send_timeout_ms": 2000} | settings)), None)
    await runtime.start()
    try:
        yield Ledger(runtime, namespace)
    finally:
        await runtime.stop()


@dataclass
class Reader:
    """One member of a consumer group, committing what it read."""

    consumer: AIOKafkaConsumer
    seen: list[tuple[str, int, int, int]] = field(default_factory=list)  # (key, amount, partition, offset)

    @classmethod
    async def join(cls, bootstrap: str, topic: str, group: str) -> "Reader":
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                    enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        return cls(consumer)

    async def read(self, amounts: set[int], timeout_s: float = 60) -> None:
        """Until every amount in `amounts` was seen, committing as it goes."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not amounts <= self.amounts():
            assert asyncio.get_running_loop().time() < deadline, f"missing {sorted(amounts - self.amounts())}"
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.seen += [(r.key.decode(), amount_of(r), r.partition, r.offset) for r in records]
            if batch:
                with contextlib.suppress(KafkaError):  # a new broker: the group joins again first
                    await self.consumer.commit()

    def amounts(self) -> set[int]:
        return {amount for _, amount, _, _ in self.seen}

    def committed(self) -> dict[int, int]:
        """Per partition, the offset after the last record read."""
        ends: dict[int, int] = {}
        for _, _, partition, offset in self.seen:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends

    def in_key_order(self) -> bool:
        """Each key's amounts, in the order they were first seen, only grow."""
        first: dict[str, list[int]] = {}
        for key, amount, _, _ in self.seen:
            if amount not in first.setdefault(key, []):
                first[key].append(amount)
        return all(amounts == sorted(amounts) for amounts in first.values())

    async def leave(self) -> None:
        await self.consumer.stop()


def amount_of(record) -> int:
    return ReservationRejected.model_validate_json(record.value).required


async def topic_now(bootstrap: str, topic: str) -> list[tuple[int, int, int]]:
    """(amount, partition, offset) of every record the topic holds now."""
    return [(amount_of(r), r.partition, r.offset) for r in await read_topic_to_end(bootstrap, topic)]


PUBLISHED = "SELECT count(*) AS n FROM outbox WHERE published_at IS NOT NULL HAVING count(*) >= %s"


async def test_published_rows_keep_the_partition_and_offset_the_broker_gave(endpoints, broker):
    async with ledger_on(endpoints, broker) as ledger:
        await ledger.grant(12)
        await ledger.until(PUBLISHED, 12)
        rows = await ledger.rows("SELECT partition, \"offset\" FROM outbox ORDER BY seq")
        partitions = await ledger.rows("SELECT partition, broker, acked_through FROM outbox_partitions")
        reader = await Reader.join(broker.bootstrap, ledger.topic, "anyone")
        await reader.read(set(range(12)))
        await reader.leave()
        cluster = await kafka_admin.cluster_id(ledger.runtime.relay._producer.client)

    # Each partition's offsets follow the rows' order without a hole, as the broker gave them.
    by_partition: dict[int, list[int]] = {}
    for row in rows:
        by_partition.setdefault(row["partition"], []).append(row["offset"])
    assert all(offsets == list(range(len(offsets))) for offsets in by_partition.values())
    assert {r["partition"]: r["acked_through"] for r in partitions} == {p: o[-1] for p, o in by_partition.items()}
    assert {r["broker"] for r in partitions} == {cluster}
    assert sorted((p, o) for _, _, p, o in reader.seen) == sorted((r["partition"], r["offset"]) for r in rows)


async def test_after_the_broker_restarts_empty_no_reader_misses_an_event_and_order_holds(endpoints, broker):
    async with ledger_on(endpoints, broker) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await ledger.grant(10)
        await router.read(set(range(10)))
        await router.leave()
        await ledger.grant(20)
        await ingest.read(set(range(30)))
        # Once the journal has seen how far both groups read, the broker goes and an empty one
        # comes, under the fence, as the embedded stack replaces it.
        read_by_both = sum(router.committed().values())
        await ledger.until("SELECT 1 FROM outbox_partitions HAVING sum(consumed_through) = %s", read_by_both)
        broker.kill()
        await asyncio.to_thread(broker.restart_empty, all_topics(ledger.namespace))  # the relay runs meanwhile
        await ledger.grant(10)

        # The ingest reader never left: it stands at its offsets in the old log.
        await ingest.read(set(range(40)))
        # The router's group starts over on the new broker, which knows none of its offsets.
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await router.read(set(range(10, 40)))
        new_log = await topic_now(broker.bootstrap, ledger.topic)
        await asyncio.gather(ingest.leave(), router.leave())

    assert ingest.in_key_order() and router.in_key_order()
    # On the new log: the rows a group had not read, then the ten new ones, each once; the
    # rows both groups had read are not published again.
    assert len(new_log) == len({amount for amount, _, _ in new_log}) == 30 - read_by_both + 10
    assert {amount for amount, _, _ in new_log} >= set(range(30, 40))
    # Its offsets go on far past the old log's, so that no reader standing there skips one.
    assert min(offset for _, _, offset in new_log) >= 30


async def test_a_topic_is_rotated_under_a_stream_and_its_readers_lose_and_repeat_nothing(endpoints, broker):
    async with ledger_on(endpoints, broker, bus_rotate_after_records=15) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        for _ in range(40):  # 120 events, a few at a time, read as they come
            await ledger.grant(3)
            await asyncio.gather(ingest.read(set(range(ledger.granted))), router.read(set(range(ledger.granted))))
        await ledger.until("SELECT 1 FROM outbox_partitions HAVING min(rotations) >= 1")
        await ledger.grant(30)
        await asyncio.gather(ingest.read(set(range(ledger.granted))), router.read(set(range(ledger.granted))))
        partitions = await ledger.rows("SELECT partition, log_start, rotations FROM outbox_partitions")
        held = await topic_now(broker.bootstrap, ledger.topic)
        await asyncio.gather(ingest.leave(), router.leave())

    for reader in (ingest, router):
        assert sorted(amount for _, amount, _, _ in reader.seen) == list(range(150))  # each once
        assert reader.in_key_order()
    starts = {p["partition"]: p["log_start"] for p in partitions}
    assert all(starts[partition] > 0 for _, partition, _ in held)
    # The topic holds only what came after its last rotation, at offsets going on from before.
    assert len(held) < 150 and all(offset >= starts[partition] for _, partition, offset in held), (starts, held, partitions)


async def test_a_rotation_waits_for_a_reader_that_lags(endpoints, broker):
    async with ledger_on(endpoints, broker, bus_rotate_after_records=10) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        await ledger.grant(500)
        await ingest.read(set(range(500)))
        await asyncio.sleep(2)  # ten looks at the topic: the router's group has read nothing
        rotations = await ledger.rows("SELECT sum(rotations) AS n FROM outbox_partitions")
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await router.read(set(range(500)))
        await ledger.until("SELECT 1 FROM outbox_partitions HAVING min(rotations) >= 1", timeout_s=60)
        await asyncio.gather(ingest.leave(), router.leave())
    assert rotations[0]["n"] == 0


async def test_a_rotation_cut_short_by_a_crash_is_finished_before_anything_is_published(endpoints, broker):
    async with ledger_on(endpoints, broker) as ledger:
        reader = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        await ledger.grant(20)
        await reader.read(set(range(20)))
        # A rotation noted its targets and re-created the topic, then its process died.
        ends = await kafka_admin.high_watermarks(ledger.runtime.relay._producer.client, ledger.topic,
                                                 list(range(TOPIC_PARTITIONS)))
        async with ledger.runtime.pool.connection() as conn:
            for partition, end in ends.items():
                await conn.execute("INSERT INTO outbox_partitions (topic, partition, rotate_to) VALUES (%s, %s, %s)"
                                   " ON CONFLICT (topic, partition) DO UPDATE SET rotate_to = excluded.rotate_to",
                                   [ledger.topic, partition, end])
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await kafka_admin.recreate_topic(admin, NewTopic(ledger.topic, TOPIC_PARTITIONS, 1))
        await admin.close()

        await ledger.grant(10)
        await reader.read(set(range(30)))
        pending = await ledger.rows("SELECT count(*) AS n FROM outbox_partitions WHERE rotate_to IS NOT NULL")
        await reader.leave()
    assert pending[0]["n"] == 0
    assert sorted(amount for _, amount, _, _ in reader.seen) == list(range(30))
    assert all(offset >= ends[partition] for _, amount, partition, offset in reader.seen if amount >= 20)


async def test_published_rows_read_by_every_group_are_pruned_after_the_retention_window(endpoints, broker):
    async with ledger_on(endpoints, broker, outbox_retention_s=0) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await ledger.grant(20)
        await ledger.until(PUBLISHED, 20)
        await asyncio.gather(ingest.read(set(range(20))), router.read(set(range(20))))
        await ingest.leave()  # what comes next, the ingest group has not read
        await ledger.grant(5)
        await router.read(set(range(25)))
        await ledger.runtime.journal.observe(ledger.runtime.relay._producer.client)
        pruned = await ledger.runtime.journal.prune()
        left = await ledger.rows("SELECT count(*) AS n FROM outbox")
        horizon = await ledger.rows("SELECT topic FROM outbox_horizon")
        await router.leave()
    assert (pruned, left[0]["n"]) == (20, 5)
    assert [row["topic"] for row in horizon] == [ledger.topic]


async def test_a_consumer_past_the_end_of_a_log_restarted_without_a_gap_reads_it_from_the_beginning(endpoints, broker):
    """What a broker restored empty by other means looks like: nobody opened its partitions
    past the old offsets."""
    namespace = f"e{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap, all_topics(namespace))
    runtime = ServiceRuntime(f"{namespace}_reader", settings_for(
        endpoints, kafka_bootstrap=broker.bootstrap, topic_namespace=namespace, bus_check_interval_s=0.2,
        kafka_session_timeout_ms=6000), None)
    applied: list[int] = []

    @runtime.consumer.on(ReservationRejected)
    async def note(ctx, event):
        ctx.after_commit(lambda: applied.append(event.required))

    runtime.consume(["ledger"])
    await runtime.start()
    try:
        await publish_numbered(broker.bootstrap, namespace, range(20))
        await eventually(lambda: len(applied) == 20)
        broker.kill()
        await asyncio.to_thread(broker.restart_empty, all_topics(namespace))
        await publish_numbered(broker.bootstrap, namespace, range(20, 23))
        await eventually(lambda: set(applied) >= set(range(23)), timeout_s=90)
    finally:
        await runtime.stop()


async def publish_numbered(bootstrap: str, namespace: str, numbers) -> None:
    events = [ReservationRejected(job_id=JOBS[n % len(JOBS)], tenant_id="t-journal", reason_code="insufficient_credits",
                                  reason="numbered", required=n, available=0) for n in numbers]
    await publish_envelopes(bootstrap, [envelop(event, "/test") for event in events],
                            lambda _: topic_of("ledger", namespace))


@pytest.mark.parametrize("partitions", [TOPIC_PARTITIONS, TOPIC_PARTITIONS - 1], ids=["as many", "fewer"])
async def test_a_topic_deleted_behind_the_service_s_back_is_published_again(endpoints, broker, partitions):
    """Same broker, but the partitions end below what it acknowledged; one that is gone for
    good (the topic came back with fewer) is published again once, to where keys map now."""
    async with ledger_on(endpoints, broker) as ledger:
        await ledger.grant(15)
        await ledger.until(PUBLISHED, 15)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await kafka_admin.recreate_topic(admin, NewTopic(ledger.topic, partitions, 1))
        await admin.close()
        reader = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await reader.read(set(range(15)))
        await ledger.grant(5)
        await reader.read(set(range(20)))
        await reader.leave()
        known = await ledger.rows("SELECT partition FROM outbox_partitions ORDER BY partition")
    assert sorted(amount for _, amount, _, _ in reader.seen) == list(range(20))
    assert reader.in_key_order()
    assert [row["partition"] for row in known] == list(range(partitions))


async def test_genline_bus_rebuild_publishes_every_journal_again(endpoints, broker):
    async with ledger_on(endpoints, broker) as ledger:
        await ledger.grant(10)
        first = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await first.read(set(range(10)))
        await first.leave()
        settings = BusSettings(database_url=endpoints.database_url, kafka_bootstrap=broker.bootstrap,
                               topic_namespace=ledger.namespace)
        lines: list[str] = []
        await rebuild(settings, f"{ledger.namespace}_", everything=True, out=lines.append)
        again = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await again.read(set(range(10)))
        services = await status(settings, f"{ledger.namespace}_")
        await again.leave()
    assert f"ledger: 10 rows to publish again on {ledger.topic}" in lines
    # The group had read everything: it reads it all again, past the gap, each once.
    assert sorted(amount for _, amount, _, _ in again.seen) == list(range(10))
    assert min(offset for _, _, _, offset in again.seen) > max(offset for _, _, _, offset in first.seen)
    [ledger_status] = [s for s in services if s["service"] == "ledger"]
    assert {k: ledger_status["journal"][k] for k in ("rows", "unpublished")} == {"rows": 10, "unpublished": 0}
    assert "floor" in ledger_status["journal"]
    assert all(p["behind"]["router"] == 0 for p in ledger_status["partitions"])


# ---- the floor, and the inboxes that forget below it ------------------------------------------

async def created_at(ledger: Ledger, amounts: list[int]) -> list:
    rows = await ledger.rows(
        "SELECT created_at FROM outbox WHERE (convert_from(body, 'UTF8')::jsonb ->> 'required')::int = ANY(%s)",
        amounts)
    assert len(rows) == len(amounts)
    return [row["created_at"] for row in rows]


async def floor_after(ledger: Ledger, looks: int = 2):
    """The floor after `looks` of the journal's own look at its readers (the first may only take
    the checkpoint that the next raises the floor to)."""
    journal = ledger.runtime.journal
    for _ in range(looks):
        await journal.observe(ledger.runtime.relay._producer.client)
        await journal.advance_floor()
    return await journal.floor()


@pytest.fixture
def no_margin(monkeypatch):
    """Checkpoints as late as the database allows: the test's rows are seconds old."""
    monkeypatch.setattr(journal_module, "FLOOR_MARGIN_S", 0.0)


async def test_the_floor_rises_past_what_every_group_read_and_never_past_a_running_transaction(
        endpoints, broker, no_margin):
    async with ledger_on(endpoints, broker, bus_republish_window_s=0, bus_check_interval_s=3600) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        empty = await floor_after(ledger)  # nothing published: nothing any group has to read
        await ledger.grant(10)
        await ledger.until(PUBLISHED, 10)
        await asyncio.gather(ingest.read(set(range(10))), router.read(set(range(10))))
        first_ten = await floor_after(ledger)

        # A transaction that began before the next rows (it may yet write rows created then)
        # holds the floor back until it ends, though every group reads those rows.
        async with await psycopg.AsyncConnection.connect(endpoints.database_url) as other:
            await other.execute("BEGIN")
            await other.execute("SELECT 1")
            began = (await (await other.execute("SELECT now() AS t")).fetchone())[0]
            await ledger.grant(5)
            await ledger.until(PUBLISHED, 15)
            await asyncio.gather(ingest.read(set(range(15))), router.read(set(range(15))))
            held = await floor_after(ledger, looks=3)
            await other.execute("ROLLBACK")
        released = await floor_after(ledger)

        # A group that lags holds it below what that group has not read.
        await ingest.leave()
        await ledger.grant(5)
        await ledger.until(PUBLISHED, 20)
        await router.read(set(range(20)))
        lagging = await floor_after(ledger, looks=3)
        await router.leave()
        created = dict(zip(range(20), await created_at(ledger, list(range(20))), strict=True))
    assert empty is not None and empty < min(created.values())
    assert first_ten > max(created[a] for a in range(10))
    assert first_ten <= held <= began < min(created[a] for a in range(10, 15))
    assert released > max(created[a] for a in range(15))
    assert released <= lagging < min(created[a] for a in range(15, 20))


async def test_an_inbox_forgets_below_the_floor_and_a_rebuild_never_publishes_what_it_forgot(
        endpoints, broker, no_margin):
    async with ledger_on(endpoints, broker, bus_republish_window_s=0) as ledger:
        ingest = ServiceRuntime("ingest", settings_for(
            endpoints, kafka_bootstrap=broker.bootstrap, topic_namespace=ledger.namespace,
            schema_name=f"{ledger.namespace}_ingest", kafka_commit_interval_ms=100), None)

        @ingest.consumer.on(ReservationRejected)
        async def note(ctx, event):
            await ctx.conn.execute("INSERT INTO effects VALUES (%s)", [event.required])

        ingest.consume(["ledger"])
        await ingest.start()
        try:
            async with ingest.pool.connection() as conn:
                await conn.execute("CREATE TABLE effects (amount int)")
            router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
            await ledger.grant(10)
            await router.read(set(range(10)))
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 10")
            ten = max(await created_at(ledger, list(range(10))))
            deadline = asyncio.get_running_loop().time() + 60
            while (floor := await floor_after(ledger, looks=1)) is None or floor <= ten:
                assert asyncio.get_running_loop().time() < deadline, "the floor never passed what both groups read"
                await asyncio.sleep(0.2)
            await router.leave()  # the router's group reads no further: the floor stays below what comes next
            await ledger.grant(1)  # it carries the floor to the ingest group's inbox
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 11")
            forgotten = await ingest.consumer.prune_inbox()
            kept = await rows_of(ingest, "SELECT count(*) AS n FROM inbox")

            duplicates = telemetry.EVENTS_CONSUMED.labels(ingest.name, ReservationRejected.event_type, "duplicate")
            skipped = duplicates._value.get()
            lines: list[str] = []
            settings = BusSettings(database_url=endpoints.database_url, kafka_bootstrap=broker.bootstrap,
                                   topic_namespace=ledger.namespace)
            await rebuild(settings, f"{ledger.namespace}_", everything=True, out=lines.append)
            deadline = asyncio.get_running_loop().time() + 60
            while duplicates._value.get() < skipped + 1:  # the one row above the floor, skipped
                assert asyncio.get_running_loop().time() < deadline, "the row above the floor never came again"
                await asyncio.sleep(0.1)
            await ledger.grant(1)  # and what comes next is applied as usual
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 12")
            effects = await rows_of(ingest, "SELECT amount FROM effects ORDER BY amount")
        finally:
            await ingest.stop()
    assert ingest.consumer.floor_topics == {ledger.topic}
    assert forgotten == 10 and kept[0]["n"] == 1
    assert f"ledger: 1 rows to publish again on {ledger.topic}" in lines
    assert [row["amount"] for row in effects] == list(range(12))  # each once


def test_an_inbox_forgets_only_on_topics_whose_journals_count_its_group_among_their_readers(endpoints):
    """A floor says every reader group the producer's contract names has read below it; a
    consumer outside that list (another name, a topic it is not a contract reader of) keeps
    every event it applied."""
    namespace = f"f{uuid.uuid4().hex[:8]}"
    runtimes = {name: ServiceRuntime(name, settings_for(endpoints, topic_namespace=namespace,
                                                        schema_name=f"{namespace}_{name}"), None)
                for name in ("router", "audit_copy")}
    runtimes["router"].consume(["ledger", "scorer", "delivery"])  # not a contract reader of delivery
    runtimes["audit_copy"].consume(["ledger"])
    assert runtimes["router"].consumer.floor_topics == {topic_of("ledger", namespace), topic_of("scorer", namespace)}
    assert runtimes["audit_copy"].consumer.floor_topics == set()
