"""The per-job event log a client reads (`jobs/job_log.py` says what an entry holds): appended
with the views in one statement, read by job or by tenant, and notified on commit."""

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from services.common.db import Conn, Statement, as_arrays, as_ctes, together, typed_arrays
from services.ingest.jobs.view import JobView, NewEntry

# The columns of a job's row that its view writes, with their types (for unnest).
VIEW_COLUMNS = {"id": "uuid", "state": "text", "view": "jsonb", "updated_at": "timestamptz"}
LOG_CHANNEL_PREFIX = "job_log_"


def log_channel(schema: str) -> str:
    """Notified with the tenant's id when a transaction that appended entries commits."""
    return LOG_CHANNEL_PREFIX + schema


async def append_log(conn: Conn, entries: list[tuple[JobView, NewEntry]],
                     *, views: Sequence[JobView] = (), also: Sequence[Statement | None] = ()) -> None:
    """Append the entries, write the jobs' new `views` and `also` (writes to other tables) in
    one statement (see `appended`). The caller holds the jobs' rows."""
    if not entries:
        await together(conn, also)
        return
    if views:
        written = sorted((view.id, view.state, view.stored_json(), view.updated_at) for view in views)
        job: Statement = (JOB_CHANGES.format(viewed=VIEWS), as_arrays(written))
    else:
        job = (JOB_CHANGES.format(viewed=NO_VIEWS), [])
    await appended(conn, entries, job=job, also=also)


def logged_new_job(new_job: JobView, *, entries: list[NewEntry], reference_key: str | None) -> Statement:
    """The CTEs that insert a new job (with the key of its input photo, if any) and the first
    entries of its log, counted in its tenant's log, and their parameters: the statement they
    open selects NOTIFY from `tenant`, so that the tenant's streams wake on commit."""
    assert entries, "a new job's log opens with the state it was submitted in"
    rows = [(new_job.id, new_job.tenant_id, entry.type, entry.time, json.dumps(entry.payload)) for entry in entries]
    params: list[Any] = [new_job.id, new_job.tenant_id, new_job.state, new_job.template, new_job.stored_json(),
                         new_job.created_at, new_job.updated_at, reference_key]
    return LOGGED.format(job=NEW_JOB), [*as_arrays(rows), *params]


async def appended(conn: Conn, entries: list[tuple[JobView, NewEntry]], *, job: Statement,
                   also: Sequence[Statement | None] = ()) -> None:
    """Number each job's entries after its last one and each tenant's after the tenant's last
    one, in the order given, append them, write the jobs' rows (`job`: their new views, or
    the new job) and `also` (writes to other tables), and notify each tenant's streams, in one
    statement. The tenants' counters stay locked until commit, so a tenant's entries commit
    in `tenant_seq` order."""
    tenants = sorted({view.tenant_id for view, _ in entries})
    if len(tenants) > 1:  # every writer takes several tenants' counters in one order: no deadlock
        await conn.execute("SELECT 1 FROM tenants WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [tenants])
    rows = [(view.id, view.tenant_id, entry.type, entry.time, json.dumps(entry.payload)) for view, entry in entries]
    job_sql, job_params = job
    also_ctes, also_params = as_ctes(also, "also")
    await conn.execute(APPEND_LOG.format(also=also_ctes + ", " if also_ctes else "", job=job_sql),
                       [*also_params, *as_arrays(rows), *job_params, LOG_CHANNEL_PREFIX])


# Each counter (`log_seq` of the job, of the tenant) moves on by its number of entries; the
# entries take the numbers after the counter's old value, in the order given (`n`). A job's
# row is written once, its counter and its new view together (a statement that updated it
# twice would keep only the first), or inserted with its counter.
VIEWS = f"SELECT * FROM unnest({typed_arrays(VIEW_COLUMNS)}) AS v({', '.join(VIEW_COLUMNS)})"
NO_VIEWS = "SELECT NULL::uuid AS id, NULL::text AS state, NULL::jsonb AS view, NULL::timestamptz AS updated_at WHERE false"
JOB_CHANGES = """viewed AS ({viewed}),
job AS (
    UPDATE jobs AS t SET log_seq = t.log_seq + coalesce(c.n, 0), state = coalesce(v.state, t.state),
        view = coalesce(v.view, t.view), updated_at = coalesce(v.updated_at, t.updated_at)
    FROM (SELECT job_id, count(*) AS n FROM entry GROUP BY job_id) AS c FULL JOIN viewed AS v ON v.id = c.job_id
    WHERE t.id = coalesce(c.job_id, v.id)
    RETURNING t.id, t.log_seq - coalesce(c.n, 0) AS last)"""
NEW_JOB = """job AS (
    INSERT INTO jobs (id, tenant_id, state, template, view, created_at, updated_at, reference_key, log_seq)
    SELECT %s::uuid, %s::text, %s::text, %s::text, %s::jsonb, %s::timestamptz, %s::timestamptz, %s::text, count(*)
    FROM entry
    RETURNING id, 0::bigint AS last)"""
LOGGED = """entry AS (
    SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::timestamptz[], %b::text[])
        WITH ORDINALITY AS e(job_id, tenant_id, type, time, payload, n)),
{job},
tenant AS (
    UPDATE tenants AS t SET log_seq = t.log_seq + c.n
    FROM (SELECT tenant_id, count(*) AS n FROM entry GROUP BY tenant_id) AS c WHERE t.id = c.tenant_id
    RETURNING t.id, t.log_seq - c.n AS last),
appended AS (
    INSERT INTO job_log (job_id, seq, tenant_id, tenant_seq, type, time, payload)
    SELECT e.job_id, job.last + row_number() OVER (PARTITION BY e.job_id ORDER BY e.n),
           e.tenant_id, tenant.last + row_number() OVER (PARTITION BY e.tenant_id ORDER BY e.n),
           e.type, e.time, e.payload::jsonb
    FROM entry AS e JOIN job ON job.id = e.job_id JOIN tenant ON tenant.id = e.tenant_id)"""
# Selected from `tenant`, with LOG_CHANNEL_PREFIX: each tenant's streams are woken on commit.
NOTIFY = "pg_notify(%b || current_schema(), id)"
APPEND_LOG = "WITH {also}" + LOGGED + f"\nSELECT {NOTIFY} FROM tenant"


async def read_log(conn: Conn, job_id: UUID, *, after: int, limit: int) -> list[dict[str, Any]]:
    """The job's entries after `seq` `after`, in order."""
    return await (await conn.execute(
        "SELECT seq, type, time, payload FROM job_log WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        [job_id, after, limit])).fetchall()


async def read_tenant_log(conn: Conn, tenant_id: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    """All of the tenant's entries after `tenant_seq` `after`, in order, each with its job."""
    return await (await conn.execute(
        "SELECT tenant_seq, job_id, seq, type, time, payload FROM job_log WHERE tenant_id = %s AND tenant_seq > %s"
        " ORDER BY tenant_seq LIMIT %s", [tenant_id, after, limit])).fetchall()


async def tenant_log_position(conn: Conn, tenant_id: str) -> int:
    """The `tenant_seq` of the tenant's last entry (0 before any)."""
    row = await (await conn.execute("SELECT log_seq FROM tenants WHERE id = %s", [tenant_id])).fetchone()
    return row["log_seq"] if row else 0
