"""The pool counts the statements it sends (genline_db_statements_total, under its schema and
what sent them): what bench/e2e.py divides by the jobs to give statements per job, and
tests/e2e/test_job_costs.py holds; a loop on a timer counts its own apart."""

import uuid

from services.common import telemetry
from services.common.db import open_pool


def sent(schema: str, source: str = "work") -> float:
    return telemetry.DB_STATEMENTS.labels(schema, source)._value.get()


async def test_each_statement_and_each_row_of_executemany_is_counted(endpoints):
    schema = f"count_{uuid.uuid4().hex[:8]}"
    # One connection, opened before counting: a pool that may grow would set up a second
    # connection (its SET search_path is counted too) whenever the first is still busy.
    pool = open_pool(endpoints.database_url, schema, size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            before = sent(schema)
            await conn.execute("SELECT 1")
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT %s", [2])
                await cursor.executemany("SELECT %s", [[3], [4], [5]])
            assert sent(schema) - before == 5
            assert (await (await conn.execute("SELECT 7 AS seven")).fetchone())["seven"] == 7  # rows still dicts
    finally:
        await pool.close()


async def test_a_loop_on_a_timer_counts_its_statements_under_its_own_name(endpoints):
    schema = f"count_{uuid.uuid4().hex[:8]}"
    pool = open_pool(endpoints.database_url, schema, size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            work, looked = sent(schema), sent(schema, "a-sweeper")
            with telemetry.counted_for("a-sweeper"):
                await conn.execute("SELECT 1")
                await conn.execute("SELECT 2")
            await conn.execute("SELECT 3")
            assert (sent(schema) - work, sent(schema, "a-sweeper") - looked) == (1, 2)
    finally:
        await pool.close()


async def test_a_statement_is_prepared_at_its_second_use_and_a_string_of_several_never(endpoints):
    """The pool's connections prepare a statement the second time it is sent (psycopg's default
    waits for the sixth); a string of several statements, which PostgreSQL cannot prepare, runs
    as often as it is sent."""
    schema = f"count_{uuid.uuid4().hex[:8]}"
    pool = open_pool(endpoints.database_url, schema, size=1)
    await pool.open(wait=True)

    async def prepared(conn) -> list[str]:
        rows = await (await conn.execute("SELECT statement FROM pg_prepared_statements")).fetchall()
        return [row["statement"] for row in rows]
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT %s::int AS n", [1])
            assert "SELECT $1::int AS n" not in await prepared(conn)
            await conn.execute("SELECT %s::int AS n", [2])
            assert "SELECT $1::int AS n" in await prepared(conn)
            for _ in range(3):
                await conn.execute("SELECT 1; SELECT 2")
    finally:
        await pool.close()
