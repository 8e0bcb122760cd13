"""The outbox as a journal, against a real PostgreSQL and a broker of each test's own: offsets
kept, a broker that restarts empty, topic rotation, a rotation a crash cut short, retention."""

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from genline_stack.embedded import TOPIC_PARTITIONS, create_topics
from services.common.bus import kafka_admin
from services.common.bus.envelope import envelop
from services.common.bus.rebuild import BusSettings, Journals, rebuild, status
from services.common.contracts import ReservationRejected, all_topics, topic_of
from services.common.runtime import ServiceRuntime
from tests.common.journal_rig import (
    JOBS,
    PUBLISHED,
    Reader,
    ledger_on,
    topic_now,
)
from tests.conftest import settings_for
from tests.kafka import publish_envelopes
from tests.polling import eventually

pytestmark = pytest.mark.processes  # starts the platform's processes or the stack's servers again


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
        # A rotation noted its targets and re-created the topic, then its process died. It
        # held the journal's lock meanwhile, as a rotation does: the live journal's next look
        # must not finish the rotation before the topic is gone.
        ends = await kafka_admin.high_watermarks(ledger.runtime.relay._producer.client, ledger.topic,
                                                 partitions=list(range(TOPIC_PARTITIONS)))
        async with ledger.runtime.journal.exclusive() as conn:
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
        kafka_session_timeout_ms=6000), migrations_package=None)
    applied: list[int] = []

    @runtime.consumer.on(ReservationRejected)
    async def note(ctx, event):
        ctx.after_commit(lambda: applied.append(event.required))

    runtime.consume_topics(["ledger"])
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
        await rebuild(Journals(settings, f"{ledger.namespace}_"), everything=True, out=lines.append)
        again = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        await again.read(set(range(10)))
        services = await status(Journals(settings, f"{ledger.namespace}_"))
        await again.leave()
    assert f"ledger: 10 rows to publish again on {ledger.topic}" in lines
    # The group had read everything: it reads it all again, past the gap, each once.
    assert sorted(amount for _, amount, _, _ in again.seen) == list(range(10))
    assert min(offset for _, _, _, offset in again.seen) > max(offset for _, _, _, offset in first.seen)
    [ledger_status] = [s for s in services if s["service"] == "ledger"]
    assert {k: ledger_status["journal"][k] for k in ("rows", "unpublished")} == {"rows": 10, "unpublished": 0}
    assert "floor" in ledger_status["journal"]
    assert all(p["behind"]["router"] == 0 for p in ledger_status["partitions"])
