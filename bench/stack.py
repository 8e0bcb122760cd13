"""The embedded stack's cost: start time, and server CPU per S3 request and per Kafka record.

Starts the embedded stack on a fresh directory and again on the same one (a restart), then
drives its S3 endpoint the way the platform does (put a candidate, copy it to the public
bucket, get it, open a presigned link) and its broker the way the outbox relay does
(acknowledged sends of ~1 KB events), and prints wall time per operation and the CPU seconds
the server process spent per operation (user + system, read from /proc through psutil).

With `--s3 moto`, the same S3 operations against `moto` in server mode (the previous
embedded S3; `pip install 'moto[server]'` first), for comparison.

    python bench/stack.py [--requests 300] [--records 500] [--s3 moto]
"""

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genline_stack.embedded import EmbeddedStack, Endpoints  # noqa: E402
from genline_stack.ports import free_port, wait_for_port  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.settings import ServiceSettings  # noqa: E402
from services.common.storage import Blob, ObjectStore  # noqa: E402

CANDIDATE = os.urandom(350_000)  # about a 512×512 PNG


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


async def s3_round(store: ObjectStore, n: int) -> None:
    key = f"bench/{n}.png"
    stored = await store.put(store.internal_bucket, key, content=Blob(CANDIDATE, "image/png"))
    await store.copy(stored, store.internal_bucket, to_bucket=store.public_bucket)
    assert await store.get(store.public_bucket, key) == CANDIDATE
    link = store.presign_get(store.public_bucket, key, ttl_s=60)
    response = await asyncio.to_thread(httpx.get, link, timeout=10)
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(CANDIDATE).digest()


def measure_s3(endpoints: Endpoints, server: psutil.Process, rounds: int, label: str) -> None:
    async def all_rounds() -> tuple[float, float]:
        store = ObjectStore(endpoints.settings(ServiceSettings))
        await store.ensure_buckets()
        await s3_round(store, -1)  # warm the connection pool
        cpu, started = cpu_s(server), time.perf_counter()
        for n in range(rounds):
            await s3_round(store, n)
        spent = time.perf_counter() - started, cpu_s(server) - cpu
        await store.aclose()
        return spent

    wall, spent = asyncio.run(all_rounds())
    requests = rounds * 4
    print(f"{label}: {requests} requests (put, copy, get, presigned get of 350 KB): "
          f"{wall / requests * 1000:.1f} ms wall, {spent / requests * 1000:.2f} ms server CPU per request")


def measure_broker(endpoints: Endpoints, broker: psutil.Process, records: int) -> None:
    from aiokafka import AIOKafkaProducer

    async def send_all() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("genline.ingest.v1.dlq", b"warm-up")
            started = time.perf_counter()
            for n in range(records):
                await producer.send_and_wait("genline.ingest.v1.dlq", os.urandom(1000), key=str(n).encode())
            return time.perf_counter() - started
        finally:
            await producer.stop()

    before = cpu_s(broker) + sum(cpu_s(p) for p in broker.children(recursive=True))
    wall = asyncio.run(send_all())
    print(f"broker: {records} acknowledged sends one after another: {wall / records * 1000:.1f} ms each, "
          f"{(cpu_s(broker) - before) / records * 1000:.2f} ms broker CPU each")


def embedded(args) -> None:
    data = Path(tempfile.mkdtemp(prefix="genline-bench-"))
    for label in ("fresh directory", "restart on the same data"):
        stack = EmbeddedStack(data_dir=data)
        started = time.perf_counter()
        endpoints = stack.start()
        print(f"stack start, {label}: {time.perf_counter() - started:.1f}s")
        servers = {part: psutil.Process(server.pid) for part, server in stack.servers.items()}
        try:
            if label.startswith("restart"):
                measure_s3(endpoints, servers["s3"], args.requests, "SeaweedFS")
                measure_broker(endpoints, servers["broker"], args.records)
        finally:
            with signals_held():
                stack.stop()


def moto(args) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, process=server)
        endpoints = Endpoints(kafka_bootstrap="unused:9092", database_url="unused", s3_endpoint_url=f"http://127.0.0.1:{port}")
        measure_s3(endpoints, psutil.Process(server.pid), args.requests, "moto")
    finally:
        with signals_held():
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="S3 rounds (4 requests each)")
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--s3", choices=["embedded", "moto"], default="embedded")
    args = parser.parse_args()
    (moto if args.s3 == "moto" else embedded)(args)


if __name__ == "__main__":
    run_stoppable(main)
