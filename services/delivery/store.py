"""Delivery's tables: `job_outcomes` (each job's one outcome), `delivered_images` (what was
published, and from which candidate), `tenant_retention` and `blanked_sources` (the retention
sweeper's), and the webhook tables
(`webhook_endpoints`, `webhook_job_secrets`, `webhook_messages`, `webhook_attempts`). Every
SQL statement of delivery is here; handlers, the sender, the retention sweeper and the
internal webhook API call these with the connection they hold."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from services.common.bus import InboxClaim, OutboxRow, staged_event
from services.common.contracts import RetentionSet
from services.common.db import Conn, as_arrays, typed_arrays
from services.delivery import domain


@dataclass(frozen=True, kw_only=True)
class DeliveredRow:
    """One published image: its number and key, the candidate's object and its place in it
    (offset None: the candidate alone), and the published bytes' digest and size."""

    n: int
    key: str
    source_key: str
    source_offset: int | None
    source_size: int
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class JobOutcome:
    """A job's one outcome: `delivered`, `failed`, or the final state a cancel gave it."""

    job_id: uuid.UUID
    tenant_id: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class DeliveredJob:
    """A job delivered: its published images, each with the candidate it came from, and
    `announces`, the outbox row of its JobDelivered."""

    job_id: uuid.UUID
    tenant_id: str
    images: list[DeliveredRow]
    announces: OutboxRow


# ---- outcomes ------------------------------------------------------------------------------


async def claim_outcome(conn: Conn, outcome: JobOutcome, *, claim: InboxClaim | None = None) -> bool:
    """Claim the job's one outcome for this transaction, in the statement that makes `claim`
    (if given; then told what is fresh); False if it has one already."""
    if claim is None:
        cur = await conn.execute(
            "INSERT INTO job_outcomes (job_id, tenant_id, outcome) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [outcome.job_id, outcome.tenant_id, outcome.outcome])
        return cur.rowcount == 1
    row = await (await conn.execute(*claim.first(
        "WITH won AS (INSERT INTO job_outcomes (job_id, tenant_id, outcome)"
        " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING job_id)"
        " SELECT (SELECT ids FROM claimed_ids) AS claimed, (SELECT count(*) FROM won) AS won",
        [outcome.job_id, outcome.tenant_id, outcome.outcome]))).fetchone()
    assert row is not None, "a SELECT without FROM gives one row"
    claim.fresh(row["claimed"])
    won: int = row["won"]
    return won == 1


async def set_outcome(conn: Conn, job_id: uuid.UUID, *, outcome: str) -> None:
    await conn.execute("UPDATE job_outcomes SET outcome = %s WHERE job_id = %s", [outcome, job_id])


async def has_outcome(conn: Conn, job_id: uuid.UUID) -> bool:
    return await (await conn.execute("SELECT 1 FROM job_outcomes WHERE job_id = %s", [job_id])).fetchone() is not None


# ---- delivered images ----------------------------------------------------------------------


DELIVERED_COLUMNS = {"n": "int", "key": "text", "source_key": "text", "source_offset": "int8", "source_size": "int8",
                     "sha256": "text", "size_bytes": "int8"}


async def claim_delivered(conn: Conn, job: DeliveredJob, *, claim: InboxClaim) -> bool:
    """Claim the job's one outcome as delivered, record its published images and add its
    JobDelivered, in the statement that makes `claim` (then told what is fresh); False
    (nothing recorded, nothing announced) if the job has its outcome already."""
    if not job.images:
        won = await claim_outcome(conn, JobOutcome(job.job_id, job.tenant_id, "delivered"), claim=claim)
        if won:
            await conn.execute(*staged_event(job.announces))
        return won
    arrays = typed_arrays(DELIVERED_COLUMNS)
    names = ", ".join(DELIVERED_COLUMNS)
    announce, announced = staged_event(job.announces, from_rows="won")
    row = await (await conn.execute(*claim.first(
        "WITH won AS (INSERT INTO job_outcomes (job_id, tenant_id, outcome) VALUES (%s, %s, 'delivered')"
        "  ON CONFLICT DO NOTHING RETURNING job_id, tenant_id),"
        f" recorded AS (INSERT INTO delivered_images (job_id, tenant_id, {names})"
        f"  SELECT w.job_id, w.tenant_id, i.* FROM won AS w, unnest({arrays}) AS i({names})),"
        f" announced AS ({announce})"
        " SELECT (SELECT ids FROM claimed_ids) AS claimed, (SELECT count(*) FROM won) AS won",
        [job.job_id, job.tenant_id,
         *as_arrays([(i.n, i.key, i.source_key, i.source_offset, i.source_size, i.sha256, i.size_bytes)
                     for i in job.images]),
         *announced]))).fetchone()
    assert row is not None, "a SELECT without FROM gives one row"
    claim.fresh(row["claimed"])
    won_count: int = row["won"]
    return won_count == 1


async def ended_jobs(conn: Conn, job_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `job_ids` whose outcome delivery decided."""
    rows = await (await conn.execute("SELECT job_id FROM job_outcomes WHERE job_id = ANY(%s)", [job_ids])).fetchall()
    return {row["job_id"] for row in rows}


async def delivered_keys(conn: Conn, job_id: uuid.UUID) -> list[str]:
    rows = await (await conn.execute("SELECT key FROM delivered_images WHERE job_id = %s", [job_id])).fetchall()
    return [row["key"] for row in rows]


async def delivered_sources(conn: Conn, tenant_id: str) -> dict[str, list[tuple[int | None, int | None]]]:
    """The objects of the tenant's candidates that were delivered, each with the delivered
    candidates' (offset, size) in it ((None, size) for a candidate stored alone)."""
    rows = await (await conn.execute(
        "SELECT source_key, source_offset, source_size FROM delivered_images WHERE tenant_id = %s",
        [tenant_id])).fetchall()
    found: dict[str, list[tuple[int | None, int | None]]] = {}
    for row in rows:
        found.setdefault(row["source_key"], []).append((row["source_offset"], row["source_size"]))
    return found


async def blanked_sources(conn: Conn, tenant_id: str) -> dict[str, datetime]:
    """The tenant's objects of candidates whose delivered candidates were blanked, each with
    when it was first written."""
    rows = await (await conn.execute("SELECT source_key, written_at FROM blanked_sources WHERE tenant_id = %s",
                                     [tenant_id])).fetchall()
    return {row["source_key"]: row["written_at"] for row in rows}


async def note_blanked(conn: Conn, tenant_id: str, *, source_key: str, written_at: datetime) -> None:
    await conn.execute("INSERT INTO blanked_sources (source_key, tenant_id, written_at) VALUES (%s, %s, %s)"
                       " ON CONFLICT (source_key) DO NOTHING", [source_key, tenant_id, written_at])


async def forget_blanked(conn: Conn, keys: list[str]) -> None:
    if keys:
        await conn.execute("DELETE FROM blanked_sources WHERE source_key = ANY(%s)", [keys])


async def erase_job(conn: Conn, job_id: uuid.UUID) -> None:
    """The job's delivered images forgotten and its prompt taken out of its webhook messages
    (they carry the job as clients see it); the record of sending stays."""
    await conn.execute("DELETE FROM blanked_sources WHERE source_key IN"
                       " (SELECT source_key FROM delivered_images WHERE job_id = %s)", [job_id])
    await conn.execute("DELETE FROM delivered_images WHERE job_id = %s", [job_id])
    await conn.execute("""UPDATE webhook_messages SET payload = jsonb_set(payload, '{prompt}', '""')"""
                       " WHERE job_id = %s AND payload ? 'prompt'", [job_id])


# ---- retention -----------------------------------------------------------------------------


async def set_retention(conn: Conn, event: RetentionSet) -> None:
    """The tenant's retention, unless a later one is recorded already."""
    await conn.execute(
        "INSERT INTO tenant_retention (tenant_id, outputs_days, candidates_days, set_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (tenant_id) DO UPDATE SET outputs_days = EXCLUDED.outputs_days,"
        " candidates_days = EXCLUDED.candidates_days, set_at = EXCLUDED.set_at"
        " WHERE tenant_retention.set_at <= EXCLUDED.set_at",
        [event.tenant_id, event.outputs_days, event.candidates_days, event.set_at])


async def retention_rules(conn: Conn) -> list[DictRow]:
    """Each tenant with a retention: tenant_id, outputs_days, candidates_days."""
    return await (await conn.execute("SELECT tenant_id, outputs_days, candidates_days FROM tenant_retention"
                                     " WHERE outputs_days IS NOT NULL OR candidates_days IS NOT NULL")).fetchall()


# ---- webhook endpoints ---------------------------------------------------------------------

ENDPOINT_COLUMNS = ("id, url, description, event_types, enabled, disabled_reason, created_at, updated_at,"
                    " CASE WHEN previous_expires_at > now() THEN previous_expires_at END AS previous_secret_expires_at")


async def endpoint(conn: Conn, tenant_id: str, *, endpoint_id: uuid.UUID, lock: bool = False) -> DictRow | None:
    """The tenant's endpoint unless deleted; with `lock`, held for this transaction."""
    return await (await conn.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
        + (" FOR UPDATE" if lock else ""), [endpoint_id, tenant_id])).fetchone()


@dataclass(frozen=True, kw_only=True)
class NewEndpoint:
    """A tenant's webhook endpoint as it is created: where to post, what it asked for, and the
    secret that signs for it."""

    tenant_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    secret: str


async def create_endpoint(conn: Conn, new: NewEndpoint) -> DictRow:
    row = await (await conn.execute(
        f"INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, enabled, secret)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {ENDPOINT_COLUMNS}",
        [uuid.uuid4(), new.tenant_id, new.url, new.description, new.event_types, new.enabled, new.secret])).fetchone()
    assert row is not None, "an INSERT without conflict target returns its row"
    return row


async def endpoints(conn: Conn, tenant_id: str) -> list[DictRow]:
    return await (await conn.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = %s AND deleted_at IS NULL"
        " ORDER BY created_at, id", [tenant_id])).fetchall()


UPDATABLE = ("url", "description", "event_types", "enabled", "disabled_reason")


async def update_endpoint(conn: Conn, endpoint_id: uuid.UUID, *, changes: dict[str, Any]) -> DictRow:
    """`changes` names columns of UPDATABLE only."""
    if not set(changes) <= set(UPDATABLE):
        raise ValueError(f"not an updatable column: {', '.join(sorted(set(changes) - set(UPDATABLE)))}")
    assignments = ", ".join(f"{column} = %s" for column in changes)
    row = await (await conn.execute(
        f"UPDATE webhook_endpoints SET {assignments}, updated_at = now() WHERE id = %s"
        f" RETURNING {ENDPOINT_COLUMNS}", [*changes.values(), endpoint_id])).fetchone()
    assert row is not None, "the caller holds the endpoint (endpoint(lock=True))"
    return row


async def delete_endpoint(conn: Conn, endpoint_id: uuid.UUID) -> None:
    await conn.execute("UPDATE webhook_endpoints SET deleted_at = now(), enabled = false WHERE id = %s", [endpoint_id])


async def rotate_secret(conn: Conn, endpoint_id: uuid.UUID, *, secret: str, previous_expires_at: datetime) -> DictRow:
    """`secret` signs from now on; the one it replaces too, until `previous_expires_at`."""
    row = await (await conn.execute(
        f"UPDATE webhook_endpoints SET previous_secret = secret, secret = %s, previous_expires_at = %s,"
        f" updated_at = now() WHERE id = %s RETURNING {ENDPOINT_COLUMNS}",
        [secret, previous_expires_at, endpoint_id])).fetchone()
    assert row is not None, "the caller holds the endpoint (endpoint(lock=True))"
    return row


async def disable_endpoint(conn: Conn, endpoint_id: uuid.UUID | None, *, reason: str) -> None:
    if endpoint_id is not None:
        await conn.execute("UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s, updated_at = now()"
                           " WHERE id = %s", [reason, endpoint_id])


async def subscribed_endpoints(conn: Conn, tenant_id: str, *, event_type: str, claim: InboxClaim) -> list[DictRow]:
    """The tenant's enabled endpoints that asked for `event_type`: id and url; read in the
    statement that claims the event on the inbox (`claim`, told what is fresh)."""
    rows = await (await conn.execute(*claim.first(
        "SELECT (SELECT ids FROM claimed_ids) AS claimed, e.id, e.url FROM (SELECT) AS one"
        " LEFT JOIN webhook_endpoints AS e ON e.tenant_id = %s AND e.enabled AND e.deleted_at IS NULL"
        " AND %s = ANY(e.event_types)", [tenant_id, event_type]))).fetchall()
    claim.fresh(rows[0]["claimed"])
    return [{"id": row["id"], "url": row["url"]} for row in rows if row["id"] is not None]


async def job_secret(conn: Conn, tenant_id: str) -> str:
    """The secret that signs the tenant's per-job webhooks, made on first use."""
    await conn.execute("INSERT INTO webhook_job_secrets (tenant_id, secret) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       [tenant_id, domain.new_webhook_secret()])
    row = await (await conn.execute("SELECT secret FROM webhook_job_secrets WHERE tenant_id = %s",
                                    [tenant_id])).fetchone()
    assert row is not None, "inserted above unless there already"
    secret: str = row["secret"]
    return secret


# ---- webhook messages and attempts ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WebhookMessage:
    """One event to one target, to send: its `webhook-id`, the target's endpoint (None: the job's
    own webhook URL) and URL, the job (None: a tenant's alert), and the JSON it carries."""

    webhook_id: str
    tenant_id: str
    endpoint_id: uuid.UUID | None
    url: str
    job_id: uuid.UUID | None
    event_type: str
    payload: str


async def queue_message(conn: Conn, message: WebhookMessage) -> None:
    """A message to send, once per `webhook_id`."""
    await conn.execute(
        "INSERT INTO webhook_messages (id, webhook_id, tenant_id, endpoint_id, url, job_id, event_type, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (webhook_id) DO NOTHING",
        [uuid.uuid4(), message.webhook_id, message.tenant_id, message.endpoint_id, message.url, message.job_id,
         message.event_type, message.payload])


CLAIM = """
UPDATE webhook_messages m SET next_attempt_at = now() + make_interval(secs => %s)
FROM (SELECT id FROM webhook_messages WHERE state = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due
WHERE m.id = due.id
RETURNING m.id
"""
CLAIMED = """
SELECT m.id, m.webhook_id, m.tenant_id, m.endpoint_id, m.job_id, m.event_type, m.payload, m.failures,
       coalesce(e.url, m.url) AS url, e.enabled, e.deleted_at, e.secret, e.previous_secret,
       e.previous_expires_at > now() AS previous_in_force, s.secret AS job_secret
FROM webhook_messages m
LEFT JOIN webhook_endpoints e ON e.id = m.endpoint_id
LEFT JOIN webhook_job_secrets s ON s.tenant_id = m.tenant_id AND m.endpoint_id IS NULL
WHERE m.id = ANY(%s)
"""


async def claim_due(conn: Conn, claim_s: float, *, limit: int) -> list[DictRow]:
    """Up to `limit` messages due, put out of every other sender's reach for `claim_s`, with
    their endpoint's URL and secrets (call in a transaction)."""
    ids = [r["id"] for r in await (await conn.execute(CLAIM, [claim_s, limit])).fetchall()]
    return await (await conn.execute(CLAIMED, [ids])).fetchall() if ids else []


async def record_attempt(conn: Conn, message_id: uuid.UUID, *, at: datetime, attempt: domain.Attempt) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts (id, message_id, attempted_at, status_code, latency_ms, response_excerpt,"
        " error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [uuid.uuid4(), message_id, at, attempt.status_code, attempt.latency_ms, attempt.excerpt,
         attempt.error])


async def schedule_retry(conn: Conn, message_id: uuid.UUID, *, failures: int, delay_s: float) -> None:
    await conn.execute("UPDATE webhook_messages SET failures = %s, next_attempt_at = now() + make_interval(secs => %s)"
                       " WHERE id = %s", [failures, delay_s, message_id])


async def close_message(conn: Conn, message_id: uuid.UUID, *, state: str) -> int:
    """The message's final state; how many attempts it took."""
    await conn.execute("UPDATE webhook_messages SET state = %s WHERE id = %s", [state, message_id])
    row = await (await conn.execute("SELECT count(*) AS n FROM webhook_attempts WHERE message_id = %s",
                                    [message_id])).fetchone()
    assert row is not None, "a count always has its row"
    n: int = row["n"]
    return n


async def abandon(conn: Conn, message_id: uuid.UUID) -> None:
    await conn.execute("UPDATE webhook_messages SET state = 'abandoned' WHERE id = %s", [message_id])


ATTEMPTS = """
SELECT a.id, m.webhook_id, m.endpoint_id, m.job_id, m.event_type, m.url, m.state AS message_state, a.attempted_at,
       a.status_code, a.latency_ms, a.response_excerpt, a.error
FROM webhook_attempts a JOIN webhook_messages m ON m.id = a.message_id
WHERE m.tenant_id = %s AND m.{by} = %s ORDER BY a.attempted_at DESC, a.id LIMIT %s
"""


async def endpoint_attempts(conn: Conn, tenant_id: str, *, endpoint_id: uuid.UUID, limit: int) -> list[DictRow]:
    """The tenant's latest attempts to one endpoint, newest first."""
    return await (await conn.execute(ATTEMPTS.format(by="endpoint_id"), [tenant_id, endpoint_id, limit])).fetchall()


async def job_attempts(conn: Conn, tenant_id: str, *, job_id: uuid.UUID, limit: int) -> list[DictRow]:
    """The tenant's latest attempts for one job, newest first."""
    return await (await conn.execute(ATTEMPTS.format(by="job_id"), [tenant_id, job_id, limit])).fetchall()


async def attempted_message(conn: Conn, tenant_id: str, *, attempt_id: uuid.UUID) -> DictRow | None:
    """The message of one of the tenant's attempts (id, webhook_id, its endpoint's enabled),
    held for this transaction."""
    return await (await conn.execute(
        "SELECT m.id, m.webhook_id, e.enabled FROM webhook_attempts a JOIN webhook_messages m ON m.id = a.message_id"
        " LEFT JOIN webhook_endpoints e ON e.id = m.endpoint_id"
        " WHERE a.id = %s AND m.tenant_id = %s FOR UPDATE OF m", [attempt_id, tenant_id])).fetchone()


async def send_again(conn: Conn, message_id: uuid.UUID) -> None:
    """The message queued again, at once, with its failures forgotten."""
    await conn.execute("UPDATE webhook_messages SET state = 'pending', failures = 0, next_attempt_at = now()"
                       " WHERE id = %s", [message_id])
