"""The embedded stack: everything Genline needs on one machine, from PyPI wheels only, and
durable: stopped (or killed) and started again on the same data directory, it has lost
nothing.

* S3: SeaweedFS (genline_stack/seaweedfs.py), data in `<data>/s3`.
* Kafka protocol: Tansu on its in-memory log (genline_stack/broker.py): the transport, not the
  record, so a broker that restarts empty loses nothing; the services rotate their topics to
  keep what it holds short.
* PostgreSQL 16: the `pgserver` wheel (genline_stack/postgres.py), data in `<data>/pgdata`.

`EmbeddedStack.start()` returns the endpoints the services connect to (genline_stack/endpoints.py);
`stop()` leaves no process behind; `kill()` ends every process with SIGKILL, as a power cut
would; `restart_broker()` replaces the broker by an empty one while the services run, and
`kill_postgres()` then `restart_postgres()` crash PostgreSQL and start it again on its data
(crash recovery), at the same address. This module is the stack's front: the names tests and
tools use are exported here (`__all__`).
"""

import asyncio
import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genline_stack.broker import (
    ROTATE_AFTER_RECORDS,
    TANSU_FETCH_MAX_WAIT_MS,
    TOPIC_PARTITIONS,
    bus_fence,
    create_topics,
    start_tansu,
)
from genline_stack.credentials import PEOPLE, ensure_credentials, provision_roles, read_person
from genline_stack.endpoints import Endpoints
from genline_stack.ports import (
    SEAWEED_GRPC_OFFSET,
    free_port,
    free_ports_with_grpc_neighbours,
    remembered_s3_port,
    stop_process,
    wait_for_port,
)
from genline_stack.postgres import (
    POSTGRES_RECOVERY_TIMEOUT_S,
    forget_pgserver_handle,
    kill_server,
    require_passwords,
    wait_for_postmaster_ready,
    with_settings,
)
from genline_stack.seaweedfs import SEAWEED_COMPONENTS, identities, mini_command, wait_for_s3, write_first
from services.common.contracts import ALL_TOPICS

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

__all__ = ["TOPIC_PARTITIONS", "EmbeddedStack", "Endpoints", "bus_fence", "create_topics", "provision",
           "start_tansu", "write_first"]


@dataclass(eq=False, kw_only=True)
class EmbeddedStack:
    """The embedded servers; `rotate_after_records` is the services' topic rotation size
    (None: never). With `kafka_tls` the broker is reached over TLS only
    (genline_stack.tls_proxy), under the stack's own CA, as a real cluster is."""

    data_dir: Path
    kafka_port: int = field(default_factory=free_port)
    s3_port: int | None = None
    rotate_after_records: int | None = ROTATE_AFTER_RECORDS
    kafka_tls: bool = False
    # With TLS, the broker itself listens here, on loopback; clients reach `kafka_port`.
    broker_port: int = field(init=False)
    # SeaweedFS's own servers' ports, by component (SEAWEED_COMPONENTS), once it started.
    seaweed_ports: dict[str, int] = field(init=False, default_factory=dict)
    # The servers it started, by part: "s3", then "broker" (stopped in reverse).
    servers: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    endpoints: Endpoints | None = field(init=False, default=None)
    _postgres: "PostgresServer | None" = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.broker_port = free_port() if self.kafka_tls else self.kafka_port

    def start(self) -> Endpoints:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            s3_url = self._spawn_seaweedfs()
            tls = self._start_tls_proxy() if self.kafka_tls else {}
            self._start_tansu()  # while SeaweedFS boots
            database_url = self._start_postgres()
            wait_for_s3(s3_url, self.servers["s3"], log=self.data_dir / "seaweedfs.log")
            self.endpoints = Endpoints(kafka_bootstrap=f"127.0.0.1:{self.kafka_port}", database_url=database_url,
                                       s3_endpoint_url=s3_url, kafka_fetch_max_wait_ms=TANSU_FETCH_MAX_WAIT_MS,
                                       bus_rotate_after_records=self.rotate_after_records, bus_wake_on_publish=True,
                                       credentials_dir=str(self.data_dir / "credentials"), **tls)
            asyncio.run(provision(self.endpoints))
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def restart_broker(self, topics: list[str] | None = None) -> None:
        """A new, empty broker in place of the running (or dead) one, on the same port, with
        `topics` (every topic of the default namespace when None) created again, all under
        the bus fence: no relay publishes while the broker changes, and each one's next pass
        finds the new broker and recovers before it publishes (services/common/bus/journal.py)."""
        assert self.endpoints is not None, "the broker is restarted in a stack that started"
        endpoints = self.endpoints
        with bus_fence(endpoints.database_url):
            old = self.servers.pop("broker", None)
            if old is not None:
                stop_process(old)
            if self.kafka_tls and not self._alive("broker-tls"):
                self._start_tls_proxy()
            self._start_tansu()
            asyncio.run(create_topics(endpoints.kafka_options(), ALL_TOPICS if topics is None else topics))

    def broker_alive(self) -> bool:
        return self._alive("broker") and (not self.kafka_tls or self._alive("broker-tls"))

    def _alive(self, part: str) -> bool:
        process = self.servers.get(part)
        return process is not None and process.poll() is None

    def stop(self) -> None:
        for process in reversed(self.servers.values()):
            stop_process(process)
        self.servers.clear()
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

    def kill(self) -> None:
        """SIGKILL to every server: no flush, no goodbye."""
        for process in self.servers.values():
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.servers.clear()
        self.kill_postgres()

    def postgres_alive(self) -> bool:
        if self._postgres is None:
            return False
        postmaster = self._postgres.get_postmaster_info().process  # None once it is gone
        return postmaster is not None and bool(postmaster.is_running())

    def kill_postgres(self) -> None:
        """SIGKILL to PostgreSQL, postmaster and backends at once, as an OOM kill of the server
        or a power cut would: what it had not written to its WAL is gone."""
        if self._postgres is None:
            return
        # Found by their working directory, the data folder: a postmaster that died already
        # leaves backends behind, and a new one cannot start while they hold its shared memory.
        kill_server(Path(self._postgres.pgdata))
        self._postgres.cleanup()  # forgets the dead server, so a later start runs a new one
        self._postgres = None

    def restart_postgres(self) -> None:
        """PostgreSQL started again on its data directory after it died (or was killed): it
        recovers from its WAL and listens where it did, so the services' URL still holds."""
        if self._postgres is not None:
            self.kill_postgres()
        self._start_postgres()

    def _start_postgres(self) -> str:
        from pgserver.postgres_server import get_server

        pgdata = (self.data_dir / "pgdata").resolve()
        try:
            self._postgres = get_server(pgdata, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            # pgserver gives `pg_ctl start` 10 s, and crash recovery after a SIGKILL on a busy
            # machine can take longer. The postmaster goes on recovering: forget the handle
            # pgserver half made, wait until the server says it is ready, then adopt it.
            forget_pgserver_handle(pgdata)
            wait_for_postmaster_ready(pgdata, POSTGRES_RECOVERY_TIMEOUT_S)
            self._postgres = get_server(pgdata, cleanup_mode="stop")
        require_passwords(self._postgres)
        self._postgres = with_settings(self._postgres, pgdata)
        return self._postgres.get_uri()

    def _spawn_seaweedfs(self) -> str:
        """`weed mini` on its data folder, with the stack's and the services' identities."""
        data = self.data_dir / "s3"
        data.mkdir(exist_ok=True)
        self.s3_port = self.s3_port or remembered_s3_port(data / "s3.port")
        identities_file = data / "identities.json"
        identities_file.write_text(json.dumps(identities(self.data_dir / "credentials")))
        taken = {self.s3_port, self.s3_port + SEAWEED_GRPC_OFFSET}
        ports = dict(zip(SEAWEED_COMPONENTS, free_ports_with_grpc_neighbours(len(SEAWEED_COMPONENTS), taken),
                         strict=True))
        self.seaweed_ports = ports
        self._spawn("s3", mini_command(data, {"s3": self.s3_port} | ports, identities_file=identities_file), log_name="seaweedfs.log")
        return f"http://127.0.0.1:{self.s3_port}"

    def _start_tansu(self) -> None:
        log = open(self.data_dir / "tansu.log", "ab")
        self.servers["broker"] = start_tansu(self.broker_port, log, advertised_port=self.kafka_port)

    def _start_tls_proxy(self) -> dict[str, Any]:
        """TLS on `kafka_port` in front of the broker; the Endpoints' settings for it."""
        from genline_stack.tls_proxy import make_certificates

        ca, cert, key = make_certificates(self.data_dir / "credentials" / "kafka-tls")
        self._spawn("broker-tls", [sys.executable, "-m", "genline_stack.tls_proxy", str(self.kafka_port),
                                   str(self.broker_port), str(cert), str(key)], log_name="tls-proxy.log")
        wait_for_port(self.kafka_port, 60, process=self.servers["broker-tls"])
        return {"kafka_security_protocol": "SSL", "kafka_ca_file": str(ca)}

    def _spawn(self, part: str, args: list[str], *, log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / log_name, "ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.servers[part] = process
        return process


async def provision(endpoints: Endpoints) -> None:
    """Topics, buckets (and their first write, write_first) and each service's database role,
    created once; services create their own schemas, as their roles."""
    from services.common.settings import ServiceSettings
    from services.common.storage import ObjectStore

    await create_topics(endpoints.kafka_options())
    store = ObjectStore(endpoints.settings(ServiceSettings))
    try:
        await store.ensure_buckets()
        await write_first(store, [store.internal_bucket, store.public_bucket])
    finally:
        await store.aclose()
    if endpoints.credentials_dir:
        directory = Path(endpoints.credentials_dir)
        credentials = ensure_credentials(directory)
        await provision_roles(endpoints.database_url, credentials,
                              people={person: read_person(directory, person) for person in PEOPLE})
