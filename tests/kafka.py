"""Reading a topic from the beginning, as an auditor would, publishing events as a
service's outbox relay would, asking how far a consumer group has read, and a job's
JobSubmitted to publish."""

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.bus.envelope import Envelope, to_kafka
from services.common.contracts import JobSpec, JobSubmitted


async def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 30,
                     keep: Callable[[object], bool] | None = None, settle_s: float = 0) -> list:
    """Records of `topic` from offset 0 (those `keep` accepts) until `want` are read or
    `timeout_s` passes; then `settle_s` longer, so that a record that should not be there
    (a duplicate) has time to show."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4()}", enable_auto_commit=False)
    await consumer.start()
    records = []

    async def read(timeout_ms: int) -> None:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        records.extend(r for rs in batch.values() for r in rs if keep is None or keep(r))

    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < want and asyncio.get_running_loop().time() < deadline:
            await read(500)
        if settle_s:
            await read(int(settle_s * 1000))
    finally:
        await consumer.stop()
    return records


async def publish_envelopes(bootstrap: str, envelopes: Iterable[Envelope], topic: Callable[[Envelope], str]) -> None:
    """Send in order (one producer keeps a partition's order) and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = []
        for envelope in envelopes:
            message = to_kafka(envelope)
            sent.append(await producer.send(topic(envelope), message.value, key=message.key,
                                            headers=list(message.headers.items())))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def unread_records(bootstrap: str, groups: dict[str, list[str]]) -> tuple[int, int]:
    """How many records of its topics each consumer group (name → topics) has not committed
    yet, summed, and how many the topics hold (their end offsets, summed: a change says that
    something was published meanwhile)."""
    end = await end_offsets(bootstrap, {t for ts in groups.values() for t in ts})
    unread = 0
    for group, topics in groups.items():
        # A consumer of the group that joins nothing (no subscription) only reads its offsets.
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group)
        await reader.start()
        try:
            for partition in (tp for tp in end if tp.topic in topics):
                # Never committed counts from 0. Some brokers (Tansu) give a partition's end as its
                # last batch's first offset + 1, so a group that has read everything may stand
                # past that end: no negative counts.
                unread += max(0, end[partition] - (await reader.committed(partition) or 0))
        finally:
            await reader.stop()
    return unread, sum(end.values())


async def end_offsets(bootstrap: str, topics: set[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # aiokafka learns topics lazily
        return await consumer.end_offsets([TopicPartition(t, p) for t in topics
                                           for p in consumer.partitions_for_topic(t) or ()])
    finally:
        await consumer.stop()


def submitted(tenant="t-bus") -> JobSubmitted:
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="a red fox",
                   images=2, candidates=3, seed=7, submitted_at=datetime.now(UTC))
    return JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec)
