"""What the journal's tests share: a broker of the test's own that can be killed and replaced
by an empty one, a ledger service publishing numbered reservations on it, readers that join
its topic as consumer groups, and the rows its tables hold."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from genline_stack.embedded import TOPIC_PARTITIONS, bus_fence, create_topics, start_tansu
from genline_stack.ports import free_port, stop_process
from services.common.bus.replay import read_topic_to_end
from services.common.contracts import ReservationRejected, all_topics, consumer_group, topic_of
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.polling import eventually


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


READ_BY = ("_ingest", "_router")


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
        **({"outbox_poll_interval_s": 0.2, "bus_check_interval_s": 0.2, "bus_send_timeout_ms": 2000} | settings)), migrations_package=None)
    # The rig's topic is read by the ingest and router groups alone: no delivery reads here
    # (on the platform delivery's group reads the ledger's topic too, for the tenants' alerts).
    runtime.journal.readers = tuple(group for group in runtime.journal.readers if group.endswith(READ_BY))
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
