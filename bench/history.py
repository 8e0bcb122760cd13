"""History for bench/e2e.py --history: the events the services published so far, put on the
topics again and again until they hold `count` records, and a wait until every service has
read them (and rotated its topics down to the bound, where one is set)."""

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from genline_stack.embedded import Endpoints  # noqa: E402
from genline_stack.fleet import SERVICES  # noqa: E402


def journal_records(database_url: str) -> list[tuple[str, bytes | None, bytes, list]]:
    """Every event the services have published so far, as (topic, key, value, headers)."""
    records = []
    with psycopg.connect(database_url) as conn:
        for name in SERVICES:
            rows = conn.execute(f'SELECT topic, record_key, body, headers FROM "{name}".outbox'
                                " WHERE published_at IS NOT NULL ORDER BY seq").fetchall()
            records += [(topic, bytes(key) if key is not None else None, bytes(body),
                         [(k, v.encode()) for k, v in headers.items()]) for topic, key, body, headers in rows]
    return records


async def publish_history(options: dict, records: list, count: int) -> None:
    """`count` records: these, published again and again, in order."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**options, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        pending = []
        for i in range(count):
            topic, key, value, headers = records[i % len(records)]
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def unread(options: dict, database_url: str) -> int:
    """Records the services' consumer groups have yet to read: each partition's end less the
    group's committed offset, or, where the group committed nothing since the partition's
    log began (a rotation), less that beginning, as the owning service's journal notes it."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from services.common.bus import committed_offsets, high_watermarks, partitions_of
    from services.common.contracts import SUBSCRIPTIONS, consumer_group, topic_of

    with psycopg.connect(database_url) as conn:
        starts = {(topic, partition): start for name in SERVICES for topic, partition, start in conn.execute(
            f'SELECT topic, partition, log_start FROM "{name}".outbox_partitions').fetchall()}
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        client, behind = admin._client, 0
        for reader, publishers in SUBSCRIPTIONS.items():
            for topic in (topic_of(p) for p in publishers):
                partitions = await partitions_of(client, topic)
                ends = await high_watermarks(client, topic, partitions=partitions)
                committed = await committed_offsets(admin, consumer_group("genline", reader),
                                                    partitions=[TopicPartition(topic, p) for p in partitions])
                behind += sum(max(0, end - max(committed.get(p, 0), starts.get((topic, p), 0)))
                              for p, end in ends.items())
        return behind
    finally:
        await admin.close()


def load_history(endpoints: Endpoints, count: int) -> float:
    """Put `count` records of history on the topics and wait until every service has read
    them; returns the seconds it took."""
    started = time.monotonic()
    records = journal_records(endpoints.database_url)
    asyncio.run(publish_history(endpoints.kafka_options(), records, count))
    deadline = time.monotonic() + 1800
    while (behind := asyncio.run(unread(endpoints.kafka_options(), endpoints.database_url))) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the services still had {behind} records of history to read")
        time.sleep(2)
    if endpoints.bus_rotate_after_records:
        wait_rotated(endpoints.database_url, endpoints.bus_rotate_after_records, deadline)
    return time.monotonic() - started


def wait_rotated(database_url: str, bound: int, deadline: float) -> None:
    """Wait until every journal has rotated its topics down to the bound: what the jobs after
    the history then meet is the steady state the bound keeps, not the rotations under way."""
    query = " UNION ALL ".join(
        f"SELECT count(*) FROM {schema}.outbox_partitions WHERE rotate_to IS NOT NULL OR log_end - log_start > %s"
        for schema in SERVICES)
    with psycopg.connect(database_url, autocommit=True) as conn:
        while sum(row[0] for row in conn.execute(query, [bound] * len(SERVICES))) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the journals did not rotate their topics after the history")
            time.sleep(2)
