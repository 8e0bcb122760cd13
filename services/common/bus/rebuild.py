"""The bus as the services' journals see it, and topics rebuilt from them (`genline bus`).

    genline bus status               each service's topic: partitions, where their records
                                     begin and end, rotations, how far each reading group is
                                     behind; each journal's rows, those still to publish, and its
                                     floor (nothing created before it is published again)
    genline bus rebuild [--all]      after a disaster (a Kafka cluster restored empty, topics
                                     deleted): every service opens its partitions past their old
                                     ends and publishes again what a reader may lack (with --all,
                                     every row its journal holds at or above its floor: the
                                     republish window, by default the last 7 days, and all that
                                     some group has not read); the inboxes skip the rest

The database and the broker come from the services' settings (GENLINE_DATABASE_URL,
GENLINE_KAFKA_BOOTSTRAP, GENLINE_TOPIC_NAMESPACE); `--schema-prefix` names the services'
schemas when they share a prefix (`<namespace>_`).
"""


from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.bus import kafka_admin
from services.common.bus.journal import Journal, Recovery
from services.common.bus.journal_tables import Partition, ServiceSchema, read_partitions
from services.common.bus.kafka_security import client_options
from services.common.contracts import PUBLISHERS, consumer_group, readers_of, topic_of
from services.common.db import open_pool
from services.common.settings import ServiceSettings


class BusSettings(ServiceSettings):
    """The operator's: its own database role (genline_operator) and KafkaUser (genline-operator)."""

    service_name: str = "operator"
    uses_object_store: ClassVar[bool] = False


@dataclass(frozen=True)
class Journals:
    """Every service's journal in one database: the operator's settings, and the prefix the
    services' schemas share (`<namespace>_`; none by default)."""

    settings: BusSettings
    prefix: str = ""


async def status(journals: Journals) -> list[dict[str, Any]]:
    """One entry per service: its topic's partitions and readers, and its journal."""
    settings, prefix = journals.settings, journals.prefix
    namespace, database_url = settings.topic_namespace, settings.database_url.get_secret_value()
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    services = []
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True,
                                                         row_factory=psycopg.rows.dict_row) as conn:
            for service in PUBLISHERS:
                schema, topic = prefix + service, topic_of(service, namespace)
                await conn.execute(f'SET search_path TO "{schema}"')
                try:
                    [rows] = await (await conn.execute(
                        "SELECT count(*) AS rows, count(*) FILTER (WHERE published_at IS NULL) AS unpublished,"
                        " (SELECT floor FROM journal_floor) AS floor FROM outbox")).fetchall()
                except psycopg.errors.UndefinedTable:
                    continue  # a service that never ran keeps no journal
                partitions = await kafka_admin.partitions_of(admin._client, topic)
                ends = await kafka_admin.high_watermarks(admin._client, topic, partitions=partitions) if partitions else {}
                known = {p: row for (_, p), row in (await read_partitions(conn, topic)).items()}
                on = [TopicPartition(topic, p) for p in partitions]
                groups = {reader: await kafka_admin.committed_offsets(admin, consumer_group(namespace, prefix + reader), partitions=on)
                          for reader in readers_of(service)}
                journal = dict(rows) | {"floor": rows["floor"].isoformat() if rows["floor"] else None}
                services.append({"service": service, "topic": topic, "journal": journal, "partitions": [
                    partition_status(replace(known.get(p) or Partition(topic=topic, partition=p), log_end=end), groups)
                    for p, end in ends.items()]})
    finally:
        await admin.close()
    return services


def partition_status(row: Partition, groups: dict[str, dict[int, int]]) -> dict[str, Any]:
    """A partition as the journal knows it, its end (`log_end`) as the broker says now."""
    partition, start, end = row.partition, row.log_start, row.log_end or 0
    return {"partition": partition, "log_start": start, "end": end, "rotations": row.rotations,
            # A group that committed nothing since the partition's log began has all of it to read.
            "behind": {reader: max(0, end - max(committed.get(partition, 0), start))
                       for reader, committed in groups.items()}}


async def rebuild(journals: Journals, everything: bool, *, out: Callable[[str], object]) -> int:
    """Every service's journal, recovered as after a lost broker: returns the rows queued."""
    settings, prefix = journals.settings, journals.prefix
    database_url = settings.database_url.get_secret_value()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    queued = 0
    try:
        broker = await kafka_admin.cluster_id(producer.client)
        for service in PUBLISHERS:
            schema = prefix + service
            pool = open_pool(database_url, schema, size=2)
            await pool.open(wait=True)
            readers = tuple(consumer_group(settings.topic_namespace, prefix + r) for r in readers_of(service))
            journal = Journal(ServiceSchema(name=schema, pool=pool, database_url=database_url, settings=settings),
                              topic_of(service, settings.topic_namespace), readers=readers)
            try:
                count = await journal.recover(producer.client, broker, how=Recovery(rebuild=True, everything=everything))
            except psycopg.errors.UndefinedTable:
                count = 0  # a service that never ran keeps no journal
            finally:
                await journal.close()
                await pool.close()
            out(f"{service}: {count} rows to publish again on {journal.owned_topic}")
            queued += count
    finally:
        await producer.stop()
    return queued
