"""Ledger throughput: reserve+settle pairs per second on one hot account.

N: pairs through the ledger's own code (the consumer's batch path: inbox, the Book's
decisions, set-based writes, outbox rows with CloudEvents) on the real PostgreSQL, run by
ledger consumer processes as in production, all on one account.
M: a naive loop, one transaction per operation (lock, check, update, insert, commit), in
the same run on the same server. The no-overdraft and settle-once invariants are checked
after the run.

Beside the rate, the CPU time a pair costs over the timed run: the consumer processes' own
(process time), and, on the embedded server, PostgreSQL's (every server process, read from
/proc through psutil). Other work on the machine moves the rate; it moves these less.

    python bench/ledger.py [--pairs 20000] [--batch 500] [--processes 2] [--streams 4] [--baseline-pairs 2000]
"""

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from bench.costs import server_cpu_s  # noqa: E402
from genline_stack.postgres import postmaster_of  # noqa: E402
from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.bus import envelop  # noqa: E402
from services.common.contracts import DeliveredImage, JobDelivered, JobSpec, JobSubmitted  # noqa: E402
from services.common.db import migrate  # noqa: E402
from services.common.runtime import ServiceRuntime, tune_collector  # noqa: E402
from services.common.settings import ServiceSettings  # noqa: E402
from services.ledger import handlers  # noqa: E402
from services.ledger.app import LedgerApp  # noqa: E402
from services.ledger.records import CreditGrant  # noqa: E402
from services.ledger.settings import LedgerSettings  # noqa: E402

UNIT = 10  # generic / stable


def pair_events(tenant: str, count: int):
    now = datetime.now(UTC)
    image = DeliveredImage(n=1, key="k", url="u", expires_at=now, sha256="s", size_bytes=1, media_type="image/png")
    reserves, settles = [], []
    for _ in range(count):
        job_id = uuid.uuid4()
        spec = JobSpec(job_id=job_id, tenant_id=tenant, template="generic", prompt="p", images=1, candidates=2,
                       seed=1, submitted_at=now)
        reserves.append(envelop(JobSubmitted(job_id=job_id, tenant_id=tenant, job=spec), "/bench"))
        settles.append(envelop(JobDelivered(job_id=job_id, tenant_id=tenant, requested=1, images=[image]), "/bench"))
    return reserves, settles


def open_ledger(database_url: str, schema: str, pool_size: int) -> LedgerApp:
    settings = LedgerSettings(environment="development", database_url=database_url, s3_access_key_id="-",
                              s3_secret_access_key="-",
                              schema_name=schema, database_pool_size=pool_size)
    ledger = LedgerApp(settings, ServiceRuntime("ledger", settings, migrations_package="services.ledger"))
    ledger.runtime.consumer.on_batch(handlers.CONSUMES.handled, ledger.ledger.apply_events)
    return ledger


async def consume_partitions(ledger: LedgerApp, reserves: list, settles: list, batch: int, streams: int) -> None:
    """Jobs spread over `streams` partitions, each consumed a batch at a time, as a ledger
    consumer does; every job hits the same account."""
    apply_batch = ledger.runtime.consumer.apply_batch

    async def consume(partition: int) -> None:
        mine_r, mine_s = reserves[partition::streams], settles[partition::streams]
        for i in range(0, len(mine_r), batch):
            await apply_batch(mine_r[i:i + batch])
            await apply_batch(mine_s[i:i + batch])

    await asyncio.gather(*(consume(p) for p in range(streams)))


def consumer_process(database_url: str, schema: str, tenant: str, pairs: int, batch: int, streams: int,
                     ready, start, results) -> None:
    """One ledger consumer process: events built beforehand, then timed from the common start."""
    async def run_consumer() -> None:
        ledger = open_ledger(database_url, schema, streams)
        tune_collector()  # as a service process does once started
        reserves, settles = pair_events(tenant, pairs)
        await ledger.runtime.pool.open(wait=True)
        ready.put(True)
        await asyncio.to_thread(start.wait)
        began, cpu = time.time(), time.process_time()
        await consume_partitions(ledger, reserves, settles, batch, streams)
        results.put((began, time.time(), time.process_time() - cpu))
        await ledger.runtime.pool.close()

    asyncio.run(run_consumer())


def ledger_code_pairs_per_s(database_url: str, schema: str, tenant: str, args,
                            postmaster: "psutil.Process | None") -> tuple[float, float, float]:
    """Pairs per second, and CPU µs per pair of the consumers and of the server."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    share = args.pairs // args.processes
    workers = [context.Process(target=consumer_process, args=(database_url, schema, tenant, share, args.batch,
                                                               args.streams, ready, start, results))
               for _ in range(args.processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    server_before = server_cpu_s(postmaster) if postmaster else 0.0
    start.set()
    spans = [results.get(timeout=600) for _ in workers]
    server_s = server_cpu_s(postmaster) - server_before if postmaster else math.nan
    for worker in workers:
        worker.join()
    pairs = share * args.processes
    rate = pairs / (max(end for _, end, _ in spans) - min(began for began, _, _ in spans))
    return rate, sum(cpu for _, _, cpu in spans) / pairs * 1e6, server_s / pairs * 1e6


def naive_pairs_per_s(database_url: str, schema: str, tenant: str, pairs: int) -> float:
    """What a ledger without batching does: a transaction per reserve and per settle."""
    with psycopg.connect(database_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("INSERT INTO accounts (tenant_id, posted) VALUES (%s, %s)", [tenant, pairs * UNIT])
        conn.commit()
        started = time.perf_counter()
        for _ in range(pairs):
            transfer_id = naive_reserve(conn, tenant)
            naive_settle(conn, tenant, transfer_id)
        return pairs / (time.perf_counter() - started)


def naive_reserve(conn: psycopg.Connection, tenant: str) -> uuid.UUID:
    posted, pending = conn.execute("SELECT posted, pending FROM accounts WHERE tenant_id = %s FOR UPDATE",
                                   [tenant]).fetchone()
    assert posted - pending >= UNIT
    transfer_id = uuid.uuid4()
    conn.execute("UPDATE accounts SET pending = pending + %s WHERE tenant_id = %s", [UNIT, tenant])
    conn.execute("INSERT INTO transfers (id, job_id, tenant_id, amount, unit_price, images, state, timeout_at)"
                 " VALUES (%s, %s, %s, %s, %s, 1, 'pending', now() + interval '1 day')",
                 [transfer_id, uuid.uuid4(), tenant, UNIT, UNIT])
    conn.execute("INSERT INTO entries (tenant_id, transfer_id, kind, amount, debit_account, credit_account)"
                 " VALUES (%s, %s, 'reserve', %s, %s, 'platform:holds')", [tenant, transfer_id, UNIT, f"tenant:{tenant}"])
    conn.commit()
    return transfer_id


def naive_settle(conn: psycopg.Connection, tenant: str, transfer_id: uuid.UUID) -> None:
    conn.execute("SELECT 1 FROM accounts WHERE tenant_id = %s FOR UPDATE", [tenant])
    conn.execute("UPDATE transfers SET state = 'posted', charged = %s, delivered = 1, settled_at = now()"
                 " WHERE id = %s AND state = 'pending'", [UNIT, transfer_id])
    conn.execute("UPDATE accounts SET pending = pending - %s, posted = posted - %s WHERE tenant_id = %s",
                 [UNIT, UNIT, tenant])
    conn.execute("INSERT INTO entries (tenant_id, transfer_id, kind, amount, debit_account, credit_account)"
                 " VALUES (%s, %s, 'charge', %s, 'platform:holds', 'platform:revenue')", [tenant, transfer_id, UNIT])
    conn.commit()


def check_invariants(database_url: str, schema: str, tenant: str, pairs: int) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        negative = conn.execute("SELECT count(*) FROM accounts WHERE posted - pending < 0").fetchone()[0]
        posted, pending = conn.execute("SELECT posted, pending FROM accounts WHERE tenant_id = %s", [tenant]).fetchone()
        grants = conn.execute("SELECT coalesce(sum(remaining), 0) FROM grants WHERE tenant_id = %s", [tenant]).fetchone()[0]
        settled = conn.execute("SELECT count(*) FROM transfers WHERE tenant_id = %s AND state = 'posted'",
                               [tenant]).fetchone()[0]
        charges = conn.execute("SELECT count(*), count(DISTINCT transfer_id) FROM entries WHERE tenant_id = %s"
                               " AND kind = 'charge'", [tenant]).fetchone()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert negative == 0, "an account went below zero"
    assert (posted, pending, grants) == (0, 0, 0), (posted, pending, grants)
    assert settled == pairs and charges == (pairs, pairs), "a reservation was not settled exactly once"
    assert outbox >= 2 * pairs, "events are missing from the outbox"
    print(f"invariants: no account below zero; {settled} reservations settled once each; balance and grants at 0;"
          f" {outbox} events in the outbox")


async def prepare(database_url: str, schema: str, tenant: str, credits: int) -> None:
    ledger = open_ledger(database_url, schema, 1)
    await migrate(database_url, schema, packages=ledger.runtime.migrations)
    await ledger.runtime.pool.open(wait=True)
    try:
        await ledger.grant(CreditGrant(tenant_id=tenant, amount=credits, source="admin", reason="bench"))
    finally:
        await ledger.runtime.pool.close()


def run(args, database_url: str, postmaster: "psutil.Process | None" = None) -> None:
    schema = f"ledger_bench_{uuid.uuid4().hex[:6]}"
    pairs = args.pairs // args.processes * args.processes
    asyncio.run(prepare(database_url, schema, "hot", pairs * UNIT))
    n, consumer_us, server_us = ledger_code_pairs_per_s(database_url, schema, "hot", args, postmaster)
    m = naive_pairs_per_s(database_url, schema, "naive", args.baseline_pairs)
    check_invariants(database_url, schema, "hot", pairs)
    print(f"ledger code: {pairs} pairs, {args.processes} consumer processes x {args.streams} partitions,"
          f" batches of {args.batch}: {n:,.0f} pairs/s")
    print(f"CPU per pair: consumers {consumer_us:.0f} µs, PostgreSQL {server_us:.0f} µs"
          f" ({args.processes} consumer processes and the server on {os.cpu_count()} cores)")
    print(f"naive loop:  {args.baseline_pairs} pairs, one transaction per operation: {m:,.0f} pairs/s")
    print(f"pairs/s: {n:.0f} baseline: {m:.0f} ratio: {n / m:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=ServiceSettings.model_fields["consumer_batch_size"].default,
                        help="events per transaction; the default is what a ledger consumer takes from Kafka at once")
    parser.add_argument("--processes", type=int, default=2, help="ledger consumer processes")
    parser.add_argument("--streams", type=int, default=4, help="partitions each process consumes concurrently")
    parser.add_argument("--baseline-pairs", type=int, default=2_000)
    parser.add_argument("--database-url", help="an existing PostgreSQL; an embedded one is started otherwise")
    args = parser.parse_args()
    if args.database_url:
        run(args, args.database_url)
        return
    import pgserver

    with tempfile.TemporaryDirectory() as data:
        server = pgserver.get_server(Path(data) / "pgdata", cleanup_mode="stop")
        try:
            run(args, server.get_uri(), postmaster_of(Path(data) / "pgdata"))
        finally:
            with signals_held():
                server.cleanup()


if __name__ == "__main__":
    run_stoppable(main)
