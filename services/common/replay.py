"""Reading a topic's whole history, as the replay commands do: every record from offset 0 to
the end, decoded into envelopes, each event id once."""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.envelope import Envelope, MalformedEnvelope, from_kafka


PAST_END_FETCHES = 5


async def read_topic_to_end(bootstrap: str, topic: str, timeout_s: float = 120) -> list:
    """Every record from offset 0 to at least the end as it was when the read began; fails,
    rather than returning a partial history, if that end is not reached in time.

    Reading goes on past that end until a fetch comes back empty (at most a few fetches, on a
    topic still written to): some Kafka-protocol brokers
    (Tansu among them) report a partition's end as the first offset of its last record batch
    plus one, so the rest of that batch lies "past the end" although it was acknowledged, and
    it need not come in the same fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        records, next_offset = [], {tp: 0 for tp in partitions}
        deadline = asyncio.get_running_loop().time() + timeout_s
        fetched, past_end = True, 0  # on a topic still written to, a few fetches past the end suffice
        while any(next_offset[tp] < end[tp] for tp in partitions) or (fetched and past_end < PAST_END_FETCHES):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"read {len(records)} records of {topic}; the end {end} was not reached")
            if all(next_offset[tp] >= end[tp] for tp in partitions):
                past_end += 1
            fetched = False
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records.extend(batch)
                if batch:
                    fetched = True
                    next_offset[tp] = max(next_offset[tp], batch[-1].offset + 1)
        return records
    finally:
        await consumer.stop()


async def topic_sizes(bootstrap: str, topics: list[str], timeout_s: float = 10) -> dict[str, int]:
    """How many records each topic holds (end minus beginning offsets, every partition); a
    topic that does not exist holds none. The end is as the broker reports it (see above)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                request_timeout_ms=int(timeout_s * 1000))
    await consumer.start()
    try:
        sizes = {}
        for topic in topics:
            try:
                partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
            except LookupError:
                sizes[topic] = 0
                continue
            start, end = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
            sizes[topic] = sum(end[tp] - start[tp] for tp in partitions)
        return sizes
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()  # aiokafka learns topics lazily
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"topic {topic!r} does not exist")
    return partitions


def decoded_envelopes(records: list) -> tuple[list[Envelope], int]:
    """Decoded envelopes, each event id once (delivery is at least once); and how many
    records could not be decoded."""
    seen, envelopes, malformed = set(), [], 0
    for record in records:
        try:
            envelope = from_kafka(dict(record.headers or ()), record.key, record.value)
        except MalformedEnvelope:
            malformed += 1
            continue
        if envelope.id not in seen:
            seen.add(envelope.id)
            envelopes.append(envelope)
    return envelopes, malformed


def report(out, malformed: int, differences: list[str], differing: int, noun: str) -> int:
    """A replay's closing lines (undecodable records, each difference, the verdict) and its exit code."""
    if malformed:
        out(f"warning: {malformed} records could not be decoded")
    for difference in differences:
        out(f"DIFFERENCE {difference}")
    out(f"{differing} {noun}(s) differ" if differences else "no differences")
    return 1 if differences else 0
