"""The ingest tables: the job read model and its event log, its listing pages, and
idempotency keys."""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from services.common.bus import InboxClaim, staged_event
from services.common.contracts import FINAL_STATES, Event
from services.common.db import Statement, as_arrays, as_ctes, together, typed_arrays, updated
from services.ingest.jobs import domain
from services.ingest.jobs.domain import JobView
from services.ingest.jobs.job_log import NewEntry, entries_for


async def insert_job(conn: psycopg.AsyncConnection, view: JobView) -> None:
    await conn.execute(
        "INSERT INTO jobs (id, tenant_id, state, template, view, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [view.id, view.tenant_id, view.state, view.template, view.stored_json(), view.created_at,
         view.updated_at],
    )


async def remember_reference(conn: psycopg.AsyncConnection, job_id: UUID, key: str) -> None:
    """The job's reference photo, deleted with the last job of its tenant that uses it."""
    await conn.execute("UPDATE jobs SET reference_key = %s WHERE id = %s", [key, job_id])


async def read_view(conn: psycopg.AsyncConnection, job_id: UUID, tenant_id: str | None = None,
                    lock: bool = False) -> JobView | None:
    """The job, if it is `tenant_id`'s (any tenant's when None) and not erased; locked for the
    transaction with `lock`. Events that arrive for an erased job change nothing."""
    tenant_clause = " AND tenant_id = %s" if tenant_id is not None else ""
    row = await (await conn.execute(
        f"SELECT view FROM jobs WHERE id = %s AND erased_at IS NULL{tenant_clause}{' FOR UPDATE' if lock else ''}",
        [job_id] + ([tenant_id] if tenant_id is not None else []),
    )).fetchone()
    return JobView.model_validate(row["view"]) if row else None


async def claim_and_lock_views(conn: psycopg.AsyncConnection, claim: InboxClaim) -> dict[UUID, JobView]:
    """Claim a batch of job events (InboxClaim), and lock the jobs they name that exist and
    are not erased, for the transaction, in id order (as every batch takes them, so that two
    batches never wait on each other in a circle), in one statement: the claim's insert runs
    first (the outer side of the join), the locks after it."""
    rows = await (await conn.execute(CLAIM_AND_LOCK_VIEWS, [
        *claim.params, sorted({envelope.event.job_id for envelope in claim.envelopes})])).fetchall()
    claim.fresh(rows[0]["claimed"])
    views = [JobView.model_validate(row["view"]) for row in rows if row["view"] is not None]
    return {view.id: view for view in views}


CLAIM_AND_LOCK_VIEWS = (
    f"WITH {InboxClaim.CLAIMED} SELECT c.claimed, j.view FROM (SELECT {InboxClaim.IDS} AS claimed) AS c"
    " LEFT JOIN LATERAL (SELECT view FROM jobs WHERE id = ANY(%b) AND erased_at IS NULL ORDER BY id FOR UPDATE) AS j"
    " ON true")


VIEW_COLUMNS = {"id": "uuid", "state": "text", "view": "jsonb", "updated_at": "timestamptz"}


async def write_views(conn: psycopg.AsyncConnection, views: list[JobView], also: Sequence[Statement | None] = ()) -> None:
    """Write the jobs' views, and `also` (writes to other tables) in the same statement."""
    await together(conn, [*also, updated("jobs", "id", VIEW_COLUMNS,
                                        [(view.id, view.state, view.stored_json(), view.updated_at) for view in views])])


async def record(conn: psycopg.AsyncConnection, before: JobView | None, after: JobView, event: Event | None,
                 at: datetime) -> None:
    """Store the view `event` moved the job to (`before` None: a new job) and append what it
    tells clients to the job's log, in the caller's transaction, which holds the job's row."""
    if before is None:
        entries = [(after, entry) for entry in entries_for(None, after, event, at)]
        if not entries:
            await insert_job(conn, after)
            return
        await append_log(conn, entries, new_job=after)
    else:
        await record_changes(conn, [(before, after, event, at)])


Change = tuple[JobView, JobView, Event | None, datetime]  # before, after, the event that moved it, when


async def record_changes(conn: psycopg.AsyncConnection, changes: list[Change],
                         also: Sequence[Statement | None] = ()) -> None:
    """Store what a series of events did to existing jobs (a job's changes in the order they
    happened, each `before` the previous `after`): each job's last view written once, in
    one statement for every job, with every entry appended at once and `also` (writes to
    other tables: receipts, Publish.statement's). The caller holds the jobs' rows."""
    first: dict[UUID, JobView] = {}
    last: dict[UUID, JobView] = {}
    for before, after, _, _ in changes:
        first.setdefault(before.id, before)
        last[after.id] = after
    views = [view for job_id, view in last.items() if view != first[job_id]]
    entries = [(after, entry) for before, after, event, at in changes for entry in entries_for(before, after, event, at)]
    if entries:
        await append_log(conn, entries, views, also=also)
    else:
        await write_views(conn, views, also)


# ---- the event log ----------------------------------------------------------------------

LOG_CHANNEL_PREFIX = "job_log_"


def log_channel(schema: str) -> str:
    """Notified with the tenant's id when a transaction that appended entries commits."""
    return LOG_CHANNEL_PREFIX + schema


async def append_log(conn: psycopg.AsyncConnection, entries: list[tuple[JobView, NewEntry]],
                     views: Sequence[JobView] = (), new_job: JobView | None = None,
                     also: Sequence[Statement | None] = ()) -> None:
    """Number each job's entries after its last one and each tenant's after the tenant's last
    one, in the order given, append them, write the jobs' new `views` (or insert `new_job`,
    the one job of the entries) and `also` (writes to other tables), and notify each
    tenant's streams, in one statement. The tenants' counters stay locked until commit, so a
    tenant's entries commit in `tenant_seq` order. The caller holds the jobs' rows."""
    if not entries:
        await together(conn, also)
        return
    tenants = sorted({view.tenant_id for view, _ in entries})
    if len(tenants) > 1:  # every writer takes several tenants' counters in one order: no deadlock
        await conn.execute("SELECT 1 FROM tenants WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [tenants])
    rows = [(view.id, view.tenant_id, entry.type, entry.time, json.dumps(entry.payload)) for view, entry in entries]
    if new_job is not None:
        job, params = NEW_JOB, [new_job.id, new_job.tenant_id, new_job.state, new_job.template,
                                new_job.stored_json(), new_job.created_at, new_job.updated_at]
    elif views:
        written = sorted((view.id, view.state, view.stored_json(), view.updated_at) for view in views)
        job, params = JOB_CHANGES.format(viewed=VIEWS), as_arrays(written)
    else:
        job, params = JOB_CHANGES.format(viewed=NO_VIEWS), []
    also_ctes, also_params = as_ctes(also, "also")
    await conn.execute(APPEND_LOG.format(also=also_ctes + ", " if also_ctes else "", job=job),
                       [*also_params, *as_arrays(rows), *params, LOG_CHANNEL_PREFIX])


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
    INSERT INTO jobs (id, tenant_id, state, template, view, created_at, updated_at, log_seq)
    SELECT %s::uuid, %s::text, %s::text, %s::text, %s::jsonb, %s::timestamptz, %s::timestamptz, count(*) FROM entry
    RETURNING id, 0::bigint AS last)"""
APPEND_LOG = """
WITH {also}entry AS (
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
    FROM entry AS e JOIN job ON job.id = e.job_id JOIN tenant ON tenant.id = e.tenant_id)
SELECT pg_notify(%b || current_schema(), id) FROM tenant
"""


async def read_log(conn: psycopg.AsyncConnection, job_id: UUID, after: int, limit: int) -> list[dict]:
    """The job's entries after `seq` `after`, in order."""
    return await (await conn.execute(
        "SELECT seq, type, time, payload FROM job_log WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        [job_id, after, limit])).fetchall()


async def read_tenant_log(conn: psycopg.AsyncConnection, tenant_id: str, after: int, limit: int) -> list[dict]:
    """All of the tenant's entries after `tenant_seq` `after`, in order, each with its job."""
    return await (await conn.execute(
        "SELECT tenant_seq, job_id, seq, type, time, payload FROM job_log WHERE tenant_id = %s AND tenant_seq > %s"
        " ORDER BY tenant_seq LIMIT %s", [tenant_id, after, limit])).fetchall()


async def tenant_log_position(conn: psycopg.AsyncConnection, tenant_id: str) -> int:
    """The `tenant_seq` of the tenant's last entry (0 before any)."""
    row = await (await conn.execute("SELECT log_seq FROM tenants WHERE id = %s", [tenant_id])).fetchone()
    return row["log_seq"] if row else 0


async def job_state(conn: psycopg.AsyncConnection, job_id: UUID, tenant_id: str) -> str | None:
    """The job's shown state if it is `tenant_id`'s and not erased, else None."""
    row = await (await conn.execute("SELECT state FROM jobs WHERE id = %s AND tenant_id = %s AND erased_at IS NULL",
                                    [job_id, tenant_id])).fetchone()
    return row["state"] if row else None


async def quiet_open_views(conn: psycopg.AsyncConnection, now: datetime, quiet_s: float,
                           limit: int) -> list[JobView]:
    """Non-final jobs unchanged for `quiet_s`, least recently changed first, locked (others
    that a client or a consumer holds right now are skipped: they are moving)."""
    rows = await (await conn.execute(
        "SELECT view FROM jobs WHERE state <> ALL(%s) AND updated_at < %s - make_interval(secs => %s)"
        " ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED",
        [sorted(FINAL_STATES), now, quiet_s, limit])).fetchall()
    return [JobView.model_validate(row["view"]) for row in rows]


# ---- erasure ---------------------------------------------------------------------------


async def was_erased(conn: psycopg.AsyncConnection, job_id: UUID, tenant_id: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM jobs WHERE id = %s AND tenant_id = %s AND erased_at IS NOT NULL",
                                    [job_id, tenant_id])).fetchone()
    return row is not None


async def erase_job(conn: psycopg.AsyncConnection, view: JobView, now: datetime) -> None:
    """Keep the row (its id answers 410) without the prompt; forget the idempotency keys
    that name the job."""
    erased = domain.erased(view, now)
    await conn.execute("UPDATE jobs SET view = %s, erased_at = %s, updated_at = %s WHERE id = %s",
                       [erased.stored_json(), now, now, view.id])
    await conn.execute("DELETE FROM idempotency_keys WHERE job_id = %s", [view.id])


async def reference_to_delete(conn: psycopg.AsyncConnection, job_id: UUID) -> str | None:
    """The job's reference photo, unless another job of its tenant, not erased, uses it too."""
    row = await (await conn.execute(
        "SELECT j.reference_key FROM jobs j WHERE j.id = %s AND j.reference_key IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM jobs o WHERE o.tenant_id = j.tenant_id AND o.reference_key = j.reference_key"
        " AND o.id <> j.id AND o.erased_at IS NULL)", [job_id])).fetchone()
    return row["reference_key"] if row else None


# ---- listing ---------------------------------------------------------------------------


async def insert_output_report(conn: psycopg.AsyncConnection, job_id: UUID, n: int, reason: str) -> bool:
    """Record a report of the job's image `n`; False when it was reported before."""
    cur = await conn.execute("INSERT INTO output_reports (job_id, n, reason) VALUES (%s, %s, %s)"
                             " ON CONFLICT DO NOTHING", [job_id, n, reason])
    return cur.rowcount != 0


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last job's (created_at, id). Newer jobs sort before it, so
    jobs submitted while a client pages never shift the pages still to come."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            created_at, job_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(datetime.fromisoformat(created_at), UUID(job_id))
        except (binascii.Error, ValueError, TypeError) as error:
            raise InvalidCursor(f"the cursor {text!r} was not issued by this API") from error


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    template: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def list_views(conn: psycopg.AsyncConnection, tenant_id: str, where: JobFilter, after: Cursor | None,
                     limit: int) -> tuple[list[JobView], Cursor | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page (None at the end)."""
    clauses, params = ["tenant_id = %s", "erased_at IS NULL"], [tenant_id]
    for clause, value in (("state = %s", where.state), ("template = %s", where.template),
                          ("created_at > %s", where.created_after), ("created_at < %s", where.created_before)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if after is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        params += [after.created_at, after.id]
    rows = await (await conn.execute(
        f"SELECT view FROM jobs WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC LIMIT %s",
        [*params, limit + 1],
    )).fetchall()
    views = [JobView.model_validate(row["view"]) for row in rows[:limit]]
    more = len(rows) > limit
    return views, Cursor(views[-1].created_at, views[-1].id) if more else None


# ---- idempotency keys -------------------------------------------------------------------


class IdempotencyKeyTaken(Exception):
    """A concurrent request with the same key committed first: answer with its job."""


# A submission's first statement: the tenant's plan, its row locked until the transaction
# ends (submissions of one tenant are counted one after another, on every replica), and the
# job and request fingerprint a live (younger than the TTL) Idempotency-Key was first used
# with. The key is read in the snapshot taken before the lock was granted, so a concurrent
# retry that committed meanwhile is missed here; its binding then refuses this one's
# (IdempotencyKeyTaken), and the submission is made again, finding it.
PLAN_AND_KEY = (
    "SELECT t.plan, k.job_id, k.request_hash FROM (SELECT) AS one"
    " LEFT JOIN LATERAL (SELECT plan FROM tenants WHERE id = %(tenant)s FOR UPDATE) AS t ON true"
    " LEFT JOIN idempotency_keys AS k ON k.tenant_id = %(tenant)s AND k.key = %(key)s"
    " AND k.created_at > now() - make_interval(secs => %(ttl)s)")


async def lock_plan_and_key(conn: psycopg.AsyncConnection, tenant_id: str, key: str | None,
                            ttl_s: int) -> tuple[str | None, tuple[UUID, str] | None]:
    """The tenant's plan name (None: no row), locked, and what `key` is bound to (PLAN_AND_KEY)."""
    row = await (await conn.execute(PLAN_AND_KEY, {"tenant": tenant_id, "key": key, "ttl": ttl_s})).fetchone()
    bound = (row["job_id"], row["request_hash"]) if row["job_id"] is not None else None
    return row["plan"], bound


# What a submission writes after its job's row, in one statement: its data key, its
# Idempotency-Key's binding (an expired one is replaced; `bound` is 0 when a live one won the
# key: IdempotencyKeyTaken) and its event's outbox row.
DATA_KEY = "data_key AS (INSERT INTO data_keys (job_id, tenant_id, key, kek_id) VALUES (%s, %s, %s, %s))"
BIND_KEY = (
    "bound AS (INSERT INTO idempotency_keys AS k (tenant_id, key, request_hash, job_id) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
    " job_id = EXCLUDED.job_id, created_at = now()"
    " WHERE k.created_at <= now() - make_interval(secs => %s) RETURNING 1)")
NO_KEY = "bound AS (SELECT 1 WHERE false)"


async def write_submission(conn: psycopg.AsyncConnection, data_key: tuple, binding: tuple | None,
                           outbox_row: tuple) -> None:
    """Write a submission's data key row (job, tenant, wrapped key, KEK), its key's binding
    (tenant, key, fingerprint, job, TTL; None without a key) and its event's outbox row."""
    announce, announced = staged_event(outbox_row)
    sql = (f"WITH {DATA_KEY}, {BIND_KEY if binding else NO_KEY}, announced AS ({announce})"
           " SELECT count(*) AS bound FROM bound")
    row = await (await conn.execute(sql, [*data_key, *(binding or ()), *announced])).fetchone()
    if binding and row["bound"] == 0:
        raise IdempotencyKeyTaken(binding[1])


async def forget_expired_keys(conn: psycopg.AsyncConnection, ttl_s: int, limit: int = 1000) -> int:
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
        " WHERE created_at <= now() - make_interval(secs => %s) LIMIT %s))", [ttl_s, limit])
    return cur.rowcount


async def insert_upload(conn: psycopg.AsyncConnection, upload_id: UUID, tenant_id: str, key: str, photo) -> dict:
    """Record a screened photo stored under `key`; `photo` is a screening.ScreenedImage."""
    return await (await conn.execute(
        "INSERT INTO uploads (id, tenant_id, key, media_type, width, height, size_bytes, sha256)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        [upload_id, tenant_id, key, photo.media_type, photo.width, photo.height, len(photo.data), photo.sha256],
    )).fetchone()


async def read_upload(conn: psycopg.AsyncConnection, upload_id: UUID, tenant_id: str) -> dict | None:
    return await (await conn.execute(
        "SELECT * FROM uploads WHERE id = %s AND tenant_id = %s", [upload_id, tenant_id])).fetchone()


async def job_with_output(conn: psycopg.AsyncConnection, **marks: str) -> tuple[UUID, str, dict] | None:
    """The job (id, tenant) and the delivered output whose `manifest_label` or `watermark_id`
    is the one given (through the GIN index over the views' outputs), or None."""
    [(field, value)] = marks.items()
    assert field in ("manifest_label", "watermark_id")
    row = await (await conn.execute(
        "SELECT j.id, j.tenant_id, o AS output FROM jobs j, jsonb_array_elements(j.view->'outputs') o"
        " WHERE j.view->'outputs' @> %s::jsonb AND o->>%s = %s LIMIT 1",
        [json.dumps([{field: value}]), field, value])).fetchone()
    return (row["id"], row["tenant_id"], row["output"]) if row else None


async def take_anonymous_request(conn: psycopg.AsyncConnection, client: str, interval_s: float,
                                 tolerance_s: float) -> float | None:
    """Count one request of an anonymous `client` (its address) against a GCRA rate, as
    accounts/limits.py does for tenants: how far its TAT now runs ahead (allowed), or None
    (refused)."""
    row = await (await conn.execute(
        "INSERT INTO anonymous_rate_limits AS r (client, tat) VALUES (%(client)s, now() + make_interval(secs => %(t)s))"
        " ON CONFLICT (client) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => %(t)s)"
        " WHERE greatest(r.tat, now()) + make_interval(secs => %(t)s) <= now() + make_interval(secs => %(tol)s)"
        " RETURNING extract(epoch FROM tat - now())::float8 AS ahead",
        {"client": client, "t": interval_s, "tol": tolerance_s})).fetchone()
    return row["ahead"] if row else None


async def forget_idle_clients(conn: psycopg.AsyncConnection) -> None:
    """Drop the rate rows of addresses idle for an hour: their next request starts afresh anyway."""
    await conn.execute("DELETE FROM anonymous_rate_limits WHERE tat < now() - interval '1 hour'")
