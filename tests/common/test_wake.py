"""A consumer's fetches on the relays' word (services/common/bus/wake.py), against the real
broker and PostgreSQL: announced records reach the consumer by a wake, never left to the idle
fetch. The idle fetch is set an hour apart here, so a record that needed it never comes."""

import uuid

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from services.common.bus.wake import FetchWaker, Waking, announced, announcement, bus_channel
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import submitted
from tests.polling import eventually

AN_HOUR = 3600.0


def fetches(service: str, brought: str) -> float:
    return REGISTRY.get_sample_value("genline_bus_fetches_total", {"service": service, "brought": brought}) or 0.0


async def two_partitions(endpoints, namespace: str) -> tuple[str, AIOKafkaConsumer]:
    """A fresh topic of two partitions, and a started consumer that has them both."""
    topic = f"{namespace}.events"
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=endpoints.kafka_bootstrap, group_id=f"{namespace}-readers",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    await eventually(lambda: len(consumer.assignment()) == 2, what="the consumer never got its partitions")
    return topic, consumer


async def say(endpoints, namespace: str, word: str) -> None:
    async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", [bus_channel(namespace), word])


async def test_records_announced_after_a_fetch_that_found_nothing_still_come_by_the_wake(endpoints):
    """The word arrives, the fetch sent after it comes back without the record (here because
    the record is written a moment later; a fetch that left the partition out, a highwater
    seen before the record or a failed fetch look the same to the consumer), and the
    partition must not pause until the record announced has come."""
    namespace, service = f"wake{uuid.uuid4().hex[:8]}", f"wake-{uuid.uuid4().hex[:8]}"
    topic, consumer = await two_partitions(endpoints, namespace)
    producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap)
    await producer.start()
    waker = FetchWaker(endpoints.database_url, [topic], waking=Waking(namespace=namespace, idle_fetch_s=AN_HOUR, service=service))
    try:
        waker.start(consumer)
        # Nothing to read: the first fetch comes back empty and every partition pauses.
        await eventually(lambda: consumer.paused() == consumer.assignment(), what="the partitions never paused")
        empty_before = fetches(service, "no")

        await say(endpoints, namespace, announcement(topic, {0: 1}))
        await eventually(lambda: fetches(service, "no") > empty_before, what="no fetch followed the word")
        await producer.send_and_wait(topic, b"announced", partition=0)

        async def handed() -> list:
            batches = await consumer.getmany(timeout_ms=100)
            return [record for records in batches.values() for record in records]

        records = await eventually(handed, timeout_s=30, what="the announced record waited for the idle fetch")
        assert [(r.partition, r.offset, r.value) for r in records] == [(0, 0, b"announced")]
        # Fetched while announced: partition 0 pauses once it is read, the other never resumed for it.
        await eventually(lambda: consumer.paused() == consumer.assignment(), what="the partitions never paused again")
    finally:
        await waker.stop()
        await producer.stop()
        await consumer.stop()


async def test_an_end_that_never_comes_is_given_up_at_the_idle_fetch(endpoints):
    """A partition announced to end where its log never gets (a broker that lost its log)
    stops being fetched after the idle fetch that follows, instead of for ever."""
    namespace, service = f"wake{uuid.uuid4().hex[:8]}", f"wake-{uuid.uuid4().hex[:8]}"
    topic, consumer = await two_partitions(endpoints, namespace)
    waker = FetchWaker(endpoints.database_url, [topic], waking=Waking(namespace=namespace, idle_fetch_s=2.0, service=service))
    try:
        waker.start(consumer)
        await eventually(lambda: consumer.paused() == consumer.assignment(), what="the partitions never paused")
        empty_before = fetches(service, "no")
        await say(endpoints, namespace, announcement(topic, {1: 1_000}))
        await eventually(lambda: fetches(service, "no") > empty_before + 3, what="the announced partition was not fetched")
        assert TopicPartition(topic, 1) not in consumer.paused()  # still fetched while its end may come
        await eventually(lambda: consumer.paused() == consumer.assignment(), timeout_s=30,
                         what="the partition announced to an end that never came kept being fetched")
    finally:
        await waker.stop()
        await consumer.stop()


async def test_a_relay_announces_each_partition_it_published_to_and_where_it_ends(endpoints):
    settings = settings_for(endpoints, bus_wake_on_publish=True)
    runtime = ServiceRuntime(f"wake_{uuid.uuid4().hex[:8]}", settings, migrations_package=None)
    heard: list[str] = []
    async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as listener:
        await listener.execute(f'LISTEN "{bus_channel(settings.topic_namespace)}"')
        await runtime.start()
        try:
            async with runtime.pool.connection() as conn, conn.transaction():
                envelope = await runtime.emit(conn, submitted(tenant="t-wake"))
            runtime.relay.notify()

            async def published() -> dict | None:
                async with runtime.pool.connection() as conn:
                    return await (await conn.execute(
                        "SELECT topic, partition, \"offset\" FROM outbox WHERE event_id = %s AND published_at IS NOT NULL",
                        [envelope.id])).fetchone()

            row = await eventually(published, what="the event was never published")

            async def heard_its_end() -> bool:
                heard.extend([n.payload async for n in listener.notifies(timeout=0.1)])
                tp = TopicPartition(row["topic"], row["partition"])
                return any(announced(word)[1].get(tp) == row["offset"] + 1 for word in heard)

            await eventually(heard_its_end, what=lambda: f"no word with the event's partition and end among {heard}")
        finally:
            await runtime.stop()


def test_a_word_gives_each_partition_its_end_and_one_that_names_only_a_topic_gives_none():
    topic = "genline.router.v1"
    assert announced(announcement(topic, {0: 4, 3: 17})) == (topic, {TopicPartition(topic, 0): 4,
                                                                     TopicPartition(topic, 3): 17})
    assert announced(topic) == (topic, {})
