"""Where servers come from: the embedded stack here, containers where a Docker engine answers."""

import asyncio
import uuid

import httpx
import psutil
import psycopg
import pytest

from genline_stack.embedded import TOPIC_PARTITIONS, EmbeddedStack, write_first
from genline_stack.ports import (
    LISTEN_PORT_FLOOR,
    SEAWEED_GRPC_OFFSET,
    ephemeral_floor,
    free_port,
    free_ports_with_grpc_neighbours,
)
from genline_stack.postgres import MAX_CONNECTIONS
from services.common.settings import ServiceSettings
from services.common.storage import Blob, ObjectStore
from tests.kafka import read_topic
from tests.stacks import ContainerStack, docker_engine_answers

pytestmark = pytest.mark.processes  # starts the platform's processes or the stack's servers again


async def exercise(endpoints) -> None:
    """One real round trip through each server the stack provides."""
    with psycopg.connect(endpoints.database_url) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    store = ObjectStore(endpoints.settings(ServiceSettings))
    key = f"roundtrip/{uuid.uuid4()}.bin"
    stored = await store.put(store.internal_bucket, key, content=Blob(b"\x89PNG genline", "image/png"))
    await store.copy(stored, store.internal_bucket, to_bucket=store.public_bucket)
    assert await store.get(store.public_bucket, key) == b"\x89PNG genline"
    link = store.presign_get(store.public_bucket, key, ttl_s=60)
    async with httpx.AsyncClient() as client:
        assert (await client.get(link)).content == b"\x89PNG genline" and stored.size_bytes == 12
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap)
    await producer.start()
    try:
        topic_marker = uuid.uuid4().bytes
        await producer.send_and_wait("genline.ingest.v1.dlq", topic_marker, key=b"roundtrip")
    finally:
        await producer.stop()
    records = await read_topic(endpoints.kafka_bootstrap, "genline.ingest.v1.dlq", want=1, timeout_s=30,
                               keep=lambda r: r.value == topic_marker)
    assert [r.value for r in records] == [topic_marker]


def test_the_session_stack_serves_postgres_16_s3_and_kafka(endpoints):
    asyncio.run(exercise(endpoints))


async def partitions_of_a_topic_the_broker_creates_itself(bootstrap: str) -> set[int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        topic = f"unasked-{uuid.uuid4().hex[:8]}"
        await producer.client._metadata_update(producer.client.cluster, [topic])  # only asked about
        return producer.client.cluster.partitions_for_topic(topic) or set()
    finally:
        await producer.stop()


def test_the_embedded_postgresql_has_room_for_several_fleets_at_once(session_stack):
    """Five services take some sixty connections: PostgreSQL's default hundred ran out with a
    second fleet beside the first (a test's own, a rolling update's other release)."""
    stack, endpoints = session_stack
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the container stack's PostgreSQL is configured by its image")
    with psycopg.connect(endpoints.database_url) as conn:
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) == MAX_CONNECTIONS >= 300


def test_a_topic_the_broker_creates_on_its_own_has_the_stacks_partitions(session_stack):
    """A consumer asking about a topic of a restarted, empty broker creates it; it must be the
    topic the stack would have created, or a job's events would change partitions."""
    stack, endpoints = session_stack
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the session's servers are containers")
    assert asyncio.run(partitions_of_a_topic_the_broker_creates_itself(endpoints.kafka_bootstrap)) == set(
        range(TOPIC_PARTITIONS))


def listening_ports(pid: int) -> set[int]:
    return {c.laddr.port for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def test_the_embedded_stack_names_each_server_it_started_by_what_it_serves(session_stack):
    """Benchmarks charge each server's CPU to its part by these names."""
    stack, endpoints = session_stack
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the session's servers are containers")

    assert list(stack.servers) == ["s3", "broker"]
    assert int(endpoints.kafka_bootstrap.rsplit(":", 1)[1]) in listening_ports(stack.servers["broker"].pid)
    assert int(endpoints.s3_endpoint_url.rsplit(":", 1)[1]) in listening_ports(stack.servers["s3"].pid)


def collections_with_volumes(master_port: int) -> set[str]:
    """The collections (a bucket's is its name) SeaweedFS's master has made volumes for."""
    status = httpx.get(f"http://127.0.0.1:{master_port}/vol/status", timeout=10).json()
    return {volume["Collection"] for data_center in status["Volumes"]["DataCenters"].values()
            for rack in data_center.values() for node in rack.values() for volume in node}


def test_each_bucket_has_its_volumes_before_a_job_writes_to_it_and_keeps_nothing_of_that(session_stack):
    """SeaweedFS makes a bucket's volumes at its first write, and writes that meet it wait (two
    at once, as a delivery's image and thumbnail, a whole second): the stack writes first."""
    stack, endpoints = session_stack
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the session's servers are containers")
    master = stack.seaweed_ports["master"]
    store = ObjectStore(endpoints.settings(ServiceSettings))
    assert {store.internal_bucket, store.public_bucket} <= collections_with_volumes(master)

    fresh = [f"genline-fresh-{uuid.uuid4().hex[:8]}-{n}" for n in (1, 2)]
    store.internal_bucket, store.public_bucket = fresh

    async def first_writes() -> tuple[set[str], set[str], list[list]]:
        await store.ensure_buckets()
        before = collections_with_volumes(master)
        await write_first(store, fresh)
        return before, collections_with_volumes(master), [await store.list_objects(b, "") for b in fresh]

    before, after, left = asyncio.run(first_writes())
    assert not set(fresh) & before  # a bucket has no volume until written to
    assert set(fresh) <= after
    assert left == [[], []]


def test_the_container_stack_serves_the_same(stack_kind, tmp_path):
    available, why = docker_engine_answers()
    if not available:
        pytest.skip(f"container stack not tested: {why}")
    stack = ContainerStack(tmp_path)
    try:
        asyncio.run(exercise(stack.start()))
    finally:
        stack.stop()


def test_servers_listen_below_the_ephemeral_range_on_ports_handed_out_once():
    """An outgoing connection never takes a server's port before the server binds it, and no
    two servers of one process are given the same port."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(LISTEN_PORT_FLOOR <= port < ephemeral_floor() for port in ports)
    seaweed = free_ports_with_grpc_neighbours(20)
    assert not set(seaweed) & set(ports)
    assert all(port + SEAWEED_GRPC_OFFSET < ephemeral_floor() for port in seaweed)
