"""A plan's limits at submission as a tenant's day grows: the query every submission runs
(`services.ingest.accounts.store.count_usage`: the tenant's open jobs, its images today)
on a tenant that already placed N jobs today, against the same query on a tenant with none,
in the same run, on the same PostgreSQL.

Before migration 0033 the images of the day were summed over every job the tenant placed
that day (each row's view read, often out of line), and the open jobs were counted over the
tenant's every job (compared with an array parameter, the planner could not use the open
jobs' index); that query runs here too, as the baseline of the cost that grew.

    python bench/usage_check.py [--jobs 1000,10000,50000] [--open 20] [--runs 200]

Prints a line per N: median ms of the query now and of the summing one, and each as a ratio
of its value at N = 0; the last line `usage_check: jobs ratio_now ratio_summed` at the
largest N.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from genline_stack.stopping import run_stoppable, signals_held  # noqa: E402
from services.common.contracts import FINAL_STATES  # noqa: E402
from services.common.db import migrate  # noqa: E402
from services.common.runtime import COMMON_MIGRATIONS  # noqa: E402
from services.ingest.accounts.limits import day_start_of  # noqa: E402
from services.ingest.accounts.store import count_usage  # noqa: E402

# What a submission ran before migration 0033.
SUMMED = ("SELECT count(*) FILTER (WHERE state <> ALL(%(final)s)) AS active,"
          " coalesce(sum((view->>'images')::int) FILTER (WHERE created_at >= %(day)s AND state <> 'rejected'), 0)"
          " AS images_today FROM jobs WHERE tenant_id = %(tenant)s"
          " AND (state <> ALL(%(final)s) OR created_at >= %(day)s)")
# A job's read model is a few kilobytes once its candidates, outputs and log are in it.
VIEW_FILLER = "x" * 3000


def add_jobs(conn: psycopg.Connection, tenant: str, count: int, *, open_jobs: int) -> None:
    """`count` jobs placed today by `tenant`, `open_jobs` of them not final, a tenth rejected."""
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, state, view, template, created_at, updated_at)"
        " SELECT gen_random_uuid(), %(tenant)s,"
        "  CASE WHEN n <= %(open)s THEN 'generating' WHEN n %% 10 = 0 THEN 'rejected' ELSE 'succeeded' END,"
        "  jsonb_build_object('images', 1 + n %% 4, 'filler', %(filler)s::text), 'generic', now(), now()"
        " FROM generate_series(1, %(count)s) AS n",
        {"tenant": tenant, "count": count, "open": open_jobs, "filler": VIEW_FILLER})


def median_ms(database_url: str, tenant: str, runs: int) -> tuple[float, float, tuple]:
    """Median ms of the query now and of the summing one, and what each counted (the same)."""
    day = day_start_of(datetime.now(UTC))

    async def now_query() -> tuple[float, tuple]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            await conn.execute('SET search_path TO "ingest"')
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                counted = await count_usage(conn, tenant, day_start=day)
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times), counted

    now_ms, counted_now = asyncio.run(now_query())
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute('SET search_path TO "ingest"')
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            row = conn.execute(SUMMED, {"final": sorted(FINAL_STATES), "day": day, "tenant": tenant}).fetchone()
            times.append((time.perf_counter() - started) * 1000)
    assert row is not None
    summed = (row["active"], row["images_today"])
    if summed != counted_now:
        raise AssertionError(f"the two queries disagree: now {counted_now}, summed {summed}")
    return now_ms, statistics.median(times), counted_now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1000,10000,50000")
    parser.add_argument("--open", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(size) for size in args.jobs.split(",")]
    import pgserver

    with tempfile.TemporaryDirectory(prefix="genline-usage-") as data:
        server = pgserver.get_server(Path(data) / "pgdata", cleanup_mode="stop")
        try:
            database_url = server.get_uri()
            asyncio.run(migrate(database_url, "ingest", packages=[COMMON_MIGRATIONS, "services.ingest"]))
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute('SET search_path TO "ingest"')
                for size in [0, *sizes]:
                    conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", [f"t{size}", f"t{size}"])
                    add_jobs(conn, f"t{size}", size, open_jobs=min(args.open, size))
                # Other tenants' jobs beside them, as on a shared database.
                conn.execute("INSERT INTO tenants (id, name) VALUES ('others', 'others')")
                add_jobs(conn, "others", max(sizes), open_jobs=args.open)
                conn.execute("VACUUM ANALYZE jobs")  # as autovacuum leaves them
                conn.execute("VACUUM ANALYZE daily_images")
            base_now, base_summed, _ = median_ms(database_url, "t0", args.runs)
            print(f"jobs today 0: now {base_now:.3f} ms, summed {base_summed:.3f} ms")
            for size in sizes:
                now_ms, summed_ms, counted = median_ms(database_url, f"t{size}", args.runs)
                print(f"jobs today {size}: now {now_ms:.3f} ms ({now_ms / base_now:.2f}x),"
                      f" summed {summed_ms:.3f} ms ({summed_ms / base_summed:.2f}x); counted {counted}")
            print(f"usage_check: jobs={max(sizes)} ratio_now={now_ms / base_now:.2f} ratio_summed={summed_ms / base_summed:.2f}")
        finally:
            with signals_held():
                server.cleanup()


if __name__ == "__main__":
    run_stoppable(main)
