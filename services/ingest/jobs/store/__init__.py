"""The jobs' SQL: the job read model and a submission's write with its data key and
Idempotency-Key (here), its event log (log.py), reads over many jobs (listing.py).

    listing.py   pages of a tenant's jobs, the operator's reports over many jobs, a job with its output
    log.py       the per-job log and the tenant's, and the channel a new entry is announced on
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.common.bus import InboxClaim, OutboxRow, staged_event
from services.common.contracts import FINAL_STATES, JobEvent
from services.common.db import Conn, Statement, together, updated
from services.ingest.jobs.store.listing import (
    Cursor,
    InvalidCursor,
    JobFilter,
    Page,
    erased_job_ids,
    insert_output_report,
    job_with_output,
    list_views,
    settled_views,
    stored_views,
    tenant_exists,
    views_with_outputs,
)
from services.ingest.jobs.store.log import (
    LOG_CHANNEL_PREFIX,
    NOTIFY,
    VIEW_COLUMNS,
    append_log,
    log_channel,
    logged_new_job,
    read_log,
    read_tenant_log,
    tenant_log_position,
)
from services.ingest.jobs.view import Change, JobView, NewEntry, erased
from services.ingest.store.data_keys import INSERT_DATA_KEY, WrappedDataKey

__all__ = ["LOG_CHANNEL_PREFIX", "Change", "Cursor", "IdempotencyKeyTaken", "InvalidCursor", "JobFilter", "Page",
           "KeyBinding", "append_log", "claim_and_lock_views",
           "erase_job", "forget_expired_keys",
           "insert_output_report", "job_state",
           "erased_job_ids", "job_with_output", "list_views", "stored_views", "settled_views", "tenant_exists", "views_with_outputs", "lock_plan_and_key", "log_channel", "quiet_open_views", "read_log",
           "read_tenant_log", "read_view", "reference_to_delete",
           "Submission", "tenant_log_position", "was_erased", "write_submission",
           "write_views"]


async def read_view(conn: Conn, job_id: UUID, *, tenant_id: str | None = None,
                    lock: bool = False) -> JobView | None:
    """The job, if it is `tenant_id`'s (any tenant's when None) and not erased; locked for the
    transaction with `lock`. Events that arrive for an erased job change nothing."""
    tenant_clause = " AND tenant_id = %s" if tenant_id is not None else ""
    row = await (await conn.execute(
        f"SELECT view FROM jobs WHERE id = %s AND erased_at IS NULL{tenant_clause}{' FOR UPDATE' if lock else ''}",
        [job_id] + ([tenant_id] if tenant_id is not None else []),
    )).fetchone()
    return JobView.model_validate(row["view"]) if row else None


async def claim_and_lock_views(conn: Conn, claim: InboxClaim) -> dict[UUID, JobView]:
    """Claim a batch of job events (InboxClaim), and lock the jobs they name that exist and
    are not erased, for the transaction, in id order (as every batch takes them, so that two
    batches never wait on each other in a circle), in one statement: the claim's insert runs
    first (the outer side of the join), the locks after it."""
    job_ids = sorted({event.job_id for event in (envelope.event for envelope in claim.envelopes)
                      if isinstance(event, JobEvent)})
    rows = await (await conn.execute(*claim.first(CLAIMED_AND_LOCKED_VIEWS, [job_ids]))).fetchall()
    claim.fresh(rows[0]["claimed"])
    views = [JobView.model_validate(row["view"]) for row in rows if row["view"] is not None]
    return {view.id: view for view in views}


CLAIMED_AND_LOCKED_VIEWS = (
    "SELECT c.claimed, j.view FROM (SELECT ids AS claimed FROM claimed_ids) AS c"
    " LEFT JOIN LATERAL (SELECT view FROM jobs WHERE id = ANY(%b) AND erased_at IS NULL ORDER BY id FOR UPDATE) AS j"
    " ON true")


async def write_views(conn: Conn, views: list[JobView], *, also: Sequence[Statement | None] = ()) -> None:
    """Write the jobs' views, and `also` (writes to other tables) in the same statement."""
    await together(conn, [*also, updated("jobs", VIEW_COLUMNS,
                                        rows=[(view.id, view.state, view.stored_json(), view.updated_at) for view in views])])


async def job_state(conn: Conn, job_id: UUID, *, tenant_id: str) -> str | None:
    """The job's shown state if it is `tenant_id`'s and not erased, else None."""
    row = await (await conn.execute("SELECT state FROM jobs WHERE id = %s AND tenant_id = %s AND erased_at IS NULL",
                                    [job_id, tenant_id])).fetchone()
    return row["state"] if row else None


async def quiet_open_views(conn: Conn, now: datetime, *, quiet_s: float,
                           limit: int) -> list[JobView]:
    """Non-final jobs unchanged for `quiet_s`, least recently changed first, locked (others
    that a client or a consumer holds right now are skipped: they are moving)."""
    rows = await (await conn.execute(
        "SELECT view FROM jobs WHERE state <> ALL(%s) AND updated_at < %s - make_interval(secs => %s)"
        " ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED",
        [sorted(FINAL_STATES), now, quiet_s, limit])).fetchall()
    return [JobView.model_validate(row["view"]) for row in rows]


# ---- erasure ---------------------------------------------------------------------------


async def was_erased(conn: Conn, job_id: UUID, *, tenant_id: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM jobs WHERE id = %s AND tenant_id = %s AND erased_at IS NOT NULL",
                                    [job_id, tenant_id])).fetchone()
    return row is not None


async def erase_job(conn: Conn, view: JobView, *, now: datetime) -> None:
    """Keep the row (its id answers 410) without the prompt; forget the idempotency keys
    that name the job."""
    await conn.execute("UPDATE jobs SET view = %s, erased_at = %s, updated_at = %s WHERE id = %s",
                       [erased(view, now).stored_json(), now, now, view.id])
    await conn.execute("DELETE FROM idempotency_keys WHERE job_id = %s", [view.id])


async def reference_to_delete(conn: Conn, job_id: UUID) -> str | None:
    """The job's reference photo, unless another job of its tenant, not erased, uses it too."""
    row = await (await conn.execute(
        "SELECT j.reference_key FROM jobs j WHERE j.id = %s AND j.reference_key IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM jobs o WHERE o.tenant_id = j.tenant_id AND o.reference_key = j.reference_key"
        " AND o.id <> j.id AND o.erased_at IS NULL)", [job_id])).fetchone()
    return row["reference_key"] if row else None


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


async def lock_plan_and_key(conn: Conn, tenant_id: str, *, key: str | None,
                            ttl_s: int) -> tuple[str | None, tuple[UUID, str] | None]:
    """The tenant's plan name (None: no row), locked, and what `key` is bound to (PLAN_AND_KEY)."""
    row = await (await conn.execute(PLAN_AND_KEY, {"tenant": tenant_id, "key": key, "ttl": ttl_s})).fetchone()
    assert row is not None  # the query's one row, `(SELECT) AS one`, whatever matched
    bound = (row["job_id"], row["request_hash"]) if row["job_id"] is not None else None
    return row["plan"], bound


# What a submission writes with its job's row and log, in one statement: its data key, its
# Idempotency-Key's binding (an expired one is replaced; `bound` is 0 when a live one won the
# key: IdempotencyKeyTaken) and its event's outbox row.
DATA_KEY = f"data_key AS ({INSERT_DATA_KEY})"
BIND_KEY = (
    "bound AS (INSERT INTO idempotency_keys AS k (tenant_id, key, request_hash, job_id) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (tenant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
    " job_id = EXCLUDED.job_id, created_at = now()"
    " WHERE k.created_at <= now() - make_interval(secs => %s) RETURNING 1)")
NO_KEY = "bound AS (SELECT 1 WHERE false)"


@dataclass(frozen=True, kw_only=True)
class KeyBinding:
    """An Idempotency-Key bound to the job it was first used with, for `ttl_s` seconds."""

    tenant_id: str
    key: str
    request_hash: str
    job_id: UUID
    ttl_s: int


@dataclass(frozen=True, kw_only=True)
class Submission:
    """What a submission writes with its job: its data key, its Idempotency-Key's binding (None
    without a key), its event's outbox row, and the key of its input photo (None without one:
    the photo is deleted with the last job of its tenant that uses it)."""

    data_key: WrappedDataKey
    binding: KeyBinding | None
    outbox_row: OutboxRow
    reference_key: str | None = None


async def write_submission(conn: Conn, new_job: JobView, *, entries: list[NewEntry], submission: Submission) -> None:
    """Write a new job with the first entries of its log, its data key row, its key's binding
    and its event's outbox row, in one statement (IdempotencyKeyTaken when a live binding won
    the key: nothing of it stays, the caller's transaction rolls back)."""
    binding = submission.binding
    announce, announced = staged_event(submission.outbox_row)
    logged, logged_params = logged_new_job(new_job, entries=entries, reference_key=submission.reference_key)
    sql = (f"WITH {DATA_KEY}, {BIND_KEY if binding else NO_KEY}, announced AS ({announce}), {logged}"
           f" SELECT {NOTIFY}, (SELECT count(*) FROM bound) AS bound FROM tenant")
    bound = [binding.tenant_id, binding.key, binding.request_hash, binding.job_id, binding.ttl_s] if binding else []
    row = await (await conn.execute(sql, [*submission.data_key.row(), *bound, *announced, *logged_params,
                                          LOG_CHANNEL_PREFIX])).fetchone()
    assert row is not None, "the new job's tenant is counted: its log opened"
    if binding and row["bound"] == 0:
        raise IdempotencyKeyTaken(binding.key)


async def forget_expired_keys(conn: Conn, ttl_s: int, *, limit: int = 1000) -> int:
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
        " WHERE created_at <= now() - make_interval(secs => %s) LIMIT %s))", [ttl_s, limit])
    return cur.rowcount


