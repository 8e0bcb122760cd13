"""Reading a service's whole history, as the replay commands do: from its journal (the rows of
its outbox, services/common/bus/journal.py) by default, or from its topic, every record from its
first offset to its end; decoded into envelopes, each event id once. Both hold the same
events: the topic is what the journal published, for as long as the broker keeps it."""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.bus.envelope import Envelope, MalformedEnvelope, from_kafka
from services.common.bus.kafka_security import client_options
from services.common.contracts import topic_of
from services.common.settings import ServiceSettings

SOURCES = ("journal", "topics")
# A bootstrap address, or a service's whole client options (kafka_security.client_options).
Bootstrap = str | dict[str, Any]
T = TypeVar("T")
D = TypeVar("D")  # a difference, however a replay words it


class HistoryRecord(Protocol):
    """A record of a service's history: a Kafka record (aiokafka's ConsumerRecord), or a row of
    its journal in that shape (JournalRecord)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True)
class JournalRecord:
    """An outbox row in the shape of a Kafka record, for the decoding topics use."""

    headers: list[tuple[str, bytes]]
    key: bytes | None
    value: bytes


def journal_schema(publisher: str, schema: str, *, service: str) -> str | None:
    """The schema of `publisher`'s journal, found beside `schema`, the schema of `service`:
    the services of one platform share their schemas' prefix (`<namespace>_`), as they share
    their consumer groups'. None when `schema` does not end with its service's name."""
    return schema.removesuffix(service) + publisher if schema.endswith(service) else None


def read_journal(conn: psycopg.Connection[Any], schema: str) -> list[JournalRecord]:
    """Every row of the schema's outbox, published or not, in the order they were written;
    none when the schema has no outbox (a service that never ran)."""
    try:
        rows = conn.execute(f'SELECT headers, record_key, body FROM "{schema}".outbox ORDER BY seq').fetchall()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return []
    return [JournalRecord([(k, v.encode()) for k, v in headers.items()], bytes(key) if key is not None else None,
                          bytes(body)) for headers, key, body in rows]


def journal_horizon(conn: psycopg.Connection[Any], schemas: list[str]) -> datetime | None:
    """The latest time before which one of these journals was pruned: what came earlier is
    not all there any more."""
    horizons = []
    for schema in schemas:
        try:
            [[horizon]] = conn.execute(f'SELECT max(pruned_before) FROM "{schema}".outbox_horizon').fetchall()
            horizons.append(horizon)
        except psycopg.errors.UndefinedTable:
            conn.rollback()
    return max((h for h in horizons if h is not None), default=None)


def read_history(conn: psycopg.Connection[Any], source: str, *, settings: ServiceSettings,
                 schemas: dict[str, str]) -> Sequence[HistoryRecord]:
    """The records of these publishers (publisher → its journal's schema), from their
    journals or from their topics (on the broker and in the topic namespace of `settings`)."""
    bootstrap, namespace = client_options(settings), settings.topic_namespace
    if source == "topics":
        async def read_all() -> list[HistoryRecord]:
            return [r for publisher in schemas for r in await read_topic_to_end(bootstrap, topic_of(publisher, namespace))]

        return asyncio.run(read_all())
    return [r for schema in schemas.values() for r in read_journal(conn, schema)]


PAST_END_FETCHES = 5


def kafka_options(bootstrap: Bootstrap) -> dict[str, Any]:
    """A bootstrap address, or a service's whole client options (kafka_security.client_options)."""
    return {"bootstrap_servers": bootstrap} if isinstance(bootstrap, str) else bootstrap


async def read_topic_to_end(bootstrap: Bootstrap, topic: str, *, timeout_s: float = 120) -> list[HistoryRecord]:
    """Every record from offset 0 to at least the end as it was when the read began; fails,
    rather than returning a partial history, if that end is not reached in time.

    Reading goes on past that end until a fetch comes back empty (at most a few fetches, on a
    topic still written to): some Kafka-protocol brokers
    (Tansu among them) report a partition's end as the first offset of its last record batch
    plus one, so the rest of that batch lies "past the end" although it was acknowledged, and
    it need not come in the same fetch."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        records: list[HistoryRecord] = []
        next_offset = dict.fromkeys(partitions, 0)
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


async def topic_sizes(bootstrap: Bootstrap, topics: list[str], *, timeout_s: float = 10) -> dict[str, int]:
    """How many records each topic holds (end minus beginning offsets, every partition); a
    topic that does not exist holds none. The end is as the broker reports it (see above)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False, group_id=None,
                                request_timeout_ms=int(timeout_s * 1000))
    await consumer.start()
    try:
        sizes: dict[str, int] = {}
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
    return set(partitions)


def decoded_envelopes(records: Sequence[HistoryRecord]) -> tuple[list[Envelope], int]:
    """Decoded envelopes, each event id once (delivery is at least once); and how many
    records could not be decoded."""
    seen: set[str] = set()
    envelopes: list[Envelope] = []
    malformed = 0
    for record in records:
        try:
            envelope = from_kafka(record)
        except MalformedEnvelope:
            malformed += 1
            continue
        if envelope.id not in seen:
            seen.add(envelope.id)
            envelopes.append(envelope)
    return envelopes, malformed


def until_settled(settle_s: float, look: Callable[[], tuple[list[D], T]]) -> tuple[list[D], T]:
    """`look()` (the differences, and what else it found), looked again once a second while
    differences remain, for at most `settle_s`: services still consuming events make
    differences that go; a difference that lasts is one."""
    deadline = time.monotonic() + settle_s
    while True:
        differences, found = look()
        if not differences or time.monotonic() > deadline:
            return differences, found
        time.sleep(1)


@dataclass(frozen=True, kw_only=True)
class Differences:
    """What a replay found: each difference as a line, how many things (`noun`s) differ, and
    how many records could not be decoded."""

    lines: list[str]
    differing: int
    noun: str
    malformed: int = 0


def report(out: Callable[[str], object], found: Differences) -> int:
    """A replay's closing lines (undecodable records, each difference, the verdict) and its exit code."""
    if found.malformed:
        out(f"warning: {found.malformed} records could not be decoded")
    for difference in found.lines:
        out(f"DIFFERENCE {difference}")
    out(f"{found.differing} {found.noun}(s) differ" if found.lines else "no differences")
    return 1 if found.lines else 0
