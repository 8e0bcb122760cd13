"""What the outbox relay asks of the broker besides publishing: which broker it is, where each
partition begins and ends, how far each reader group has read, and the two operations that
let a partition start on a new, empty log without its offsets going back: recreating a topic
and a gap.

A gap is a control batch whose offsets span a range holding no record. Every Kafka client
skips control batches (they are how transactions mark commits), and the partition's next
offset moves past the range, so a reader standing anywhere below it reads on from the first
record after it, as it would past records deleted by retention. Tansu accepts a gap from a
client; Apache Kafka refuses control batches from producers, and `produce_gap` then raises.

Tansu reports a partition's latest offset as its last batch's first offset + 1, which lies
below the true end when that batch holds several records; a fetch's high watermark is exact
on every broker, so `high_watermarks` asks for both.
"""

import struct
from collections import defaultdict
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBase, DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

LATEST = -1  # what an offset request asks for: the offset the next record will take
# A control record's key: version 0, type 1 (a commit marker); its value: version 0, epoch 0.
COMMIT_MARKER_KEY, COMMIT_MARKER_VALUE = struct.pack(">hh", 0, 1), struct.pack(">hi", 0, 0)
# The most offsets one batch can span (its last offset delta is an int32).
MAX_GAP = 2**31 - 1


class BrokerRefused(KafkaError):  # type: ignore[misc]  # aiokafka ships no types
    """The broker answered a request with an error code."""


async def cluster_id(client: AIOKafkaClient) -> str:
    """The broker's cluster id: a broker started afresh on an empty log gets a new one."""
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
    response = await client.send(node, MetadataRequest([]))
    return response.cluster_id or ""


def connections(client: AIOKafkaClient) -> frozenset[Any]:
    """The client's open connections to brokers, as objects: a broker restarted since one was
    opened cannot answer on it, so an unchanged set is still the same broker. (aiokafka keeps
    them in `_conns`; nothing public says which are open.)"""
    return frozenset(conn for conn in client._conns.values() if conn.connected())


async def partitions_of(client: AIOKafkaClient, topic: str, *, fresh: bool = False) -> list[int]:
    """The topic's partitions, as last known (`fresh`: as the broker says now); none when it
    does not exist."""
    if fresh or not client.cluster.partitions_for_topic(topic):
        await client.force_metadata_update()
    return sorted(client.cluster.partitions_for_topic(topic) or ())


def _by_leader(client: AIOKafkaClient, topic: str, *, partitions: list[int]) -> dict[int, list[int]]:
    leaders: dict[int, list[int]] = defaultdict(list)
    for partition in partitions:
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is None or leader < 0:
            raise BrokerRefused(f"no leader for {topic}/{partition}")
        leaders[leader].append(partition)
    return leaders


async def latest_offsets(client: AIOKafkaClient, topic: str, *, partitions: list[int]) -> dict[int, int]:
    """The latest offset of each partition, as the broker lists it."""
    found = {}
    for leader, mine in _by_leader(client, topic, partitions=partitions).items():
        response = await client.send(leader, OffsetRequest(-1, 0, [(topic, [(p, LATEST) for p in mine])]))
        for _, answers in response.topics:
            for answer in answers:
                partition, error = answer[0], answer[1]
                if error:
                    raise for_code(error)(f"listing offsets of {topic}/{partition}")
                found[partition] = answer[-1]  # the offset is the last field in every version
    return found


async def high_watermarks(client: AIOKafkaClient, topic: str, *, partitions: list[int]) -> dict[int, int]:
    """Each partition's exact end: the offset its next record will take."""
    latest = await latest_offsets(client, topic, partitions=partitions)
    ends = {}
    for leader, mine in _by_leader(client, topic, partitions=partitions).items():
        # Tansu answers a fetch that may not wait with no partition at all: wait a little.
        request = FetchRequest(10, 1, 1 << 16, 0, [(topic, [(p, latest[p], 1 << 16) for p in mine])])
        response = await client.send(leader, request)
        for _, answers in response.topics:
            for answer in answers:
                partition, error, high_watermark = answer[0], answer[1], answer[2]
                if error:
                    raise for_code(error)(f"fetching the end of {topic}/{partition}")
                ends[partition] = max(high_watermark, latest[partition])
    if missing := set(partitions) - ends.keys():
        raise BrokerRefused(f"the broker did not say where {topic}/{sorted(missing)} end")
    return ends


def gap_batch(span: int) -> bytes:
    """A control batch covering `span` offsets, holding one commit marker at its last offset."""
    if not 0 < span <= MAX_GAP:
        raise ValueError(f"a gap spans 1 to {MAX_GAP} offsets, not {span}")
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 16)
    builder.append(span - 1, timestamp=None, key=COMMIT_MARKER_KEY, value=COMMIT_MARKER_VALUE, headers=[])
    batch = builder.build()
    at = DefaultRecordBase.ATTRIBUTES_OFFSET
    struct.pack_into(">h", batch, at, struct.unpack_from(">h", batch, at)[0] | DefaultRecordBase.CONTROL_MASK)
    struct.pack_into(">I", batch, DefaultRecordBase.CRC_OFFSET, calc_crc32c(batch[at:]))
    return bytes(batch)


async def produce_gap(client: AIOKafkaClient, where: TopicPartition, *, span: int) -> None:
    """Move the partition's next offset `span` further on, without a record a reader sees."""
    topic, partition = where
    while span > 0:
        step = min(span, MAX_GAP)
        [leader] = _by_leader(client, topic, partitions=[partition])
        request = ProduceRequest(required_acks=-1, timeout=10_000, topics=[(topic, [(partition, gap_batch(step))])],
                                 transactional_id=None)
        response = await client.send(leader, request)
        for _, answers in response.topics:
            for answer in answers:
                if answer[1]:
                    raise for_code(answer[1])(f"producing a gap of {step} offsets on {topic}/{partition}")
        span -= step


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, *, partitions: list[TopicPartition]) -> dict[int, int]:
    """The offsets `group` committed on these partitions (of one topic); a partition it never
    committed on is left out."""
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def recreate_topic(admin: AIOKafkaAdminClient, new: NewTopic) -> None:
    """Delete the topic and create it again, empty, as `new` says (its partitions and replicas)."""
    topic = new.name
    deleted = await admin.delete_topics([topic])
    for name, error in deleted.topic_error_codes:
        if error and error != 3:  # 3: it was gone already
            raise for_code(error)(f"deleting {name}")
    created = await admin.create_topics([new])
    for name, error, *_ in created.topic_errors:
        if error:
            raise for_code(error)(f"creating {name}")
