"""Where the tests' servers come from: containers when a Docker engine answers, the
embedded stack otherwise. `GENLINE_TEST_STACK` = auto | embedded | containers."""

import os
from pathlib import Path

from genline_stack.embedded import EmbeddedStack, Endpoints, provision


def docker_engine_answers() -> tuple[bool, str]:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True, "a Docker engine answers"
    except Exception as exc:
        return False, f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:120]})"


def chosen_stack() -> tuple[str, str]:
    wanted = os.environ.get("GENLINE_TEST_STACK", "auto")
    if wanted == "embedded":
        return "embedded", "asked for by GENLINE_TEST_STACK"
    available, why = docker_engine_answers()
    if available:
        return "containers", why
    return ("unavailable" if wanted == "containers" else "embedded"), why


class ContainerStack:
    """Apache Kafka, PostgreSQL 16 and MinIO in containers, through testcontainers."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._containers = []

    def start(self) -> Endpoints:
        import asyncio

        from testcontainers.kafka import KafkaContainer
        from testcontainers.minio import MinioContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft()
        postgres = PostgresContainer("postgres:16-alpine", driver=None)
        minio = MinioContainer()
        for container in (kafka, postgres, minio):
            container.start()
            self._containers.append(container)
        host, port = minio.get_container_host_ip(), minio.get_exposed_port(minio.port)
        endpoints = Endpoints(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            database_url=postgres.get_connection_url(),
            s3_endpoint_url=f"http://{host}:{port}",
            s3_access_key_id=minio.access_key,
            s3_secret_access_key=minio.secret_key,
            credentials_dir=str(self.data_dir / "credentials"),
        )
        asyncio.run(provision(endpoints))
        return endpoints

    def stop(self) -> None:
        for container in reversed(self._containers):
            container.stop()


def start_stack(kind: str, data_dir: Path):
    # The services rotate nothing on the session's broker: tests read their topics from the
    # beginning to see what was published (tests/test_broker_loss.py rotates its own).
    stack = ContainerStack(data_dir) if kind == "containers" else EmbeddedStack(data_dir=data_dir, rotate_after_records=None)
    return stack, stack.start()
