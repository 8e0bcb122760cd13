"""The router's tables: admitted jobs, the attempts asked for and their claims, attempt
outcomes, the remote jobs each attempt has at hosted providers, and the scorer's verdicts
per provider and template."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from services.common.bus import InboxClaim, OutboxRow, staged_event
from services.common.contracts import JobSpec
from services.common.db import Conn, Pool
from services.router.domain import AdmittedJob
from services.router.providers.journal import RESUMABLE, RemoteJob, RemoteJobKey


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedAttempt:
    """An attempt waiting for a router process: what the fair queue needs to order it."""

    job_id: UUID
    attempt: int
    images_needed: int
    tier: str
    tenant_id: str
    priority: int = 0  # the tenant's plan's: a larger share of the router
    job_priority: str = "interactive"  # its place among the tenant's own jobs (JobPriority)

    @property
    def key(self) -> tuple[UUID, int]:
        return self.job_id, self.attempt


async def admit_job(conn: Conn, job: AdmittedJob, *, claim: InboxClaim | None = None, spec_json: str | None = None) -> bool:
    """Record an admitted job (its spend and next index are the new job's) and ask for its first
    attempt, in one statement, which makes `claim` too if given (then told what is fresh); False
    if it was admitted (or canceled) before. Its spec is kept as `spec_json` if given (written
    for the replicas of the release the events are written for), else whole."""
    spec = job.spec
    claim = claim or InboxClaim([])
    row = await (await conn.execute(*claim.first_by_name(
        "WITH admitted AS (INSERT INTO jobs (job_id, tenant_id, tier, template, spec, budget_micro_usd, traceparent)"
        "  SELECT %(job)s, %(tenant)s, %(tier)s, %(template)s, %(spec)s, %(budget)s, %(traceparent)s"
        "  WHERE NOT EXISTS (SELECT 1 FROM canceled_jobs WHERE job_id = %(job)s)"
        "  ON CONFLICT DO NOTHING RETURNING job_id),"
        " requested AS (INSERT INTO attempt_requests (job_id, attempt, images_needed)"
        "  SELECT job_id, 1, %(images)s FROM admitted ON CONFLICT DO NOTHING RETURNING job_id)"
        " SELECT (SELECT count(*) FROM requested) AS requested, (SELECT ids FROM claimed_ids) AS claimed",
        {"job": spec.job_id, "tenant": spec.tenant_id, "tier": spec.tier, "template": spec.template,
         "spec": spec_json or spec.model_dump_json(), "budget": job.budget_micro_usd, "traceparent": job.traceparent,
         "images": spec.images}))).fetchone()
    assert row is not None, "a SELECT without FROM gives one row"
    claim.fresh(row["claimed"])
    return bool(row["requested"] == 1)


async def request_attempt(conn: Conn, job_id: UUID, *, attempt: int, images_needed: int) -> bool:
    cur = await conn.execute(
        "INSERT INTO attempt_requests (job_id, attempt, images_needed) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        [job_id, attempt, images_needed])
    return cur.rowcount == 1


async def cancel_job(conn: Conn, job_id: UUID) -> bool:
    """Generate nothing more for the job: its pending attempts are closed, so one running now
    cannot publish. False if it was canceled before."""
    cur = await conn.execute("INSERT INTO canceled_jobs (job_id) VALUES (%s) ON CONFLICT DO NOTHING", [job_id])
    await conn.execute("UPDATE jobs SET final = true, stop_reason = 'canceled' WHERE job_id = %s", [job_id])
    await conn.execute("UPDATE attempt_requests SET state = 'done' WHERE job_id = %s AND state = 'pending'", [job_id])
    return cur.rowcount == 1


async def erase_clear_prompt(conn: Conn, job_id: UUID) -> None:
    """Blank a prompt kept in clear in the job's spec (admitted before prompts were sealed)."""
    await conn.execute("""UPDATE jobs SET spec = jsonb_set(spec, '{prompt}', '""') WHERE job_id = %s"""
                       " AND jsonb_typeof(spec->'prompt') = 'string'", [job_id])


JOB_COLUMNS = "spec, budget_micro_usd, spent_micro_usd, next_index, final, stop_reason, traceparent"


async def load_job(conn: Conn, job_id: UUID, *, lock: bool = False) -> AdmittedJob | None:
    row = await (await conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = %s{' FOR UPDATE' if lock else ''}", [job_id])).fetchone()
    return _job_state(row) if row is not None else None


def _job_state(row: dict[str, Any]) -> AdmittedJob:
    return AdmittedJob(spec=JobSpec.model_validate(row["spec"]), budget_micro_usd=row["budget_micro_usd"],
                    spent_micro_usd=row["spent_micro_usd"], next_index=row["next_index"], final=row["final"],
                    stop_reason=row["stop_reason"], traceparent=row["traceparent"])


async def claimable_attempts(conn: Conn, limit: int) -> list[QueuedAttempt]:
    """Pending attempts no live router holds, oldest first."""
    rows = await (await conn.execute(
        "SELECT r.job_id, r.attempt, r.images_needed, j.tier, j.tenant_id,"
        " coalesce((j.spec->>'priority')::int, 0) AS priority,"
        " coalesce(j.spec->>'job_priority', 'interactive') AS job_priority FROM attempt_requests r"
        " JOIN jobs j USING (job_id) WHERE r.state = 'pending'"
        " AND (r.claimed_until IS NULL OR r.claimed_until < now()) ORDER BY r.requested_at LIMIT %s",
        [limit])).fetchall()
    return [QueuedAttempt(**row) for row in rows]


CLAIM = ("UPDATE attempt_requests SET claimed_by = %s, claimed_until = now() + make_interval(secs => %s),"
         " tries = tries + 1 WHERE job_id = %s AND attempt = %s AND state = 'pending'"
         " AND (claimed_until IS NULL OR claimed_until < now()) RETURNING job_id, tries")


async def claim_attempt(conn: Conn, request: QueuedAttempt, *, owner: str,
                        lease_s: float) -> int | None:
    """Take the attempt for `owner`; its try number, or None if another router holds it or it is done."""
    row = await (await conn.execute(CLAIM, [owner, lease_s, request.job_id, request.attempt])).fetchone()
    return row["tries"] if row else None


@dataclass(frozen=True, slots=True)
class Lease:
    """Who claims an attempt (a router process), and for how long before the claim lapses."""

    owner: str
    lease_s: float


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    """An attempt a router claimed: what was asked, which try this is, and its job's state."""

    request: QueuedAttempt
    tries: int
    job: AdmittedJob


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt claimed, and its job's state as kept: read by `claimed()` once the claim is
    committed, so that a state this release cannot read (kept for a later one, after a
    rollback) still counts the claim's try, and the attempt is given back with a pause that
    grows with its tries, instead of being claimed again at every look."""

    request: QueuedAttempt
    tries: int
    row: dict[str, Any]

    def claimed(self) -> ClaimedAttempt:
        return ClaimedAttempt(self.request, self.tries, _job_state(self.row))


async def claim_job_attempt(conn: Conn, request: QueuedAttempt, *, lease: Lease,
                            first_announces: OutboxRow | None = None) -> Claim | None:
    """`claim_attempt` and the job's state, in one statement; None if another router holds
    the attempt or it is done. `first_announces`, an outbox row (outbox_row), is added by
    the same statement if this is the attempt's first claim: a takeover announces nothing."""
    staged = staged_event(first_announces, "claimed WHERE claimed.tries = 1") if first_announces else None
    announce = f", announced AS ({staged[0]})" if staged else ""
    row = await (await conn.execute(
        f"WITH claimed AS ({CLAIM}){announce} SELECT claimed.tries, {JOB_COLUMNS} FROM claimed JOIN jobs USING (job_id)",
        [lease.owner, lease.lease_s, request.job_id, request.attempt, *(staged[1] if staged else ())])).fetchone()
    return Claim(request, row["tries"], row) if row else None


async def announce_if_held(conn: Conn, request: QueuedAttempt, *, owner: str,
                           announces: OutboxRow) -> bool:
    """Add `announces`, an outbox row (outbox_row), only while `owner` still holds the attempt."""
    announce, announced = staged_event(announces, from_rows="held")
    cur = await conn.execute(
        "WITH held AS (SELECT 1 FROM attempt_requests WHERE job_id = %s AND attempt = %s AND claimed_by = %s"
        f" AND state = 'pending') {announce}",
        [request.job_id, request.attempt, owner, *announced])
    return cur.rowcount == 1


async def renew_claims(conn: Conn, owner: str, *, keys: list[tuple[UUID, int]],
                       lease_s: float) -> None:
    """Extend the claims `owner` holds on these attempts (job id, attempt): those it is running."""
    await conn.execute(
        "UPDATE attempt_requests SET claimed_until = now() + make_interval(secs => %s)"
        " WHERE claimed_by = %s AND state = 'pending'"
        " AND (job_id, attempt) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))",
        [lease_s, owner, [job for job, _ in keys], [attempt for _, attempt in keys]])


async def release_claim(conn: Conn, request: QueuedAttempt, *, owner: str, retry_in_s: float) -> None:
    await conn.execute(
        "UPDATE attempt_requests SET claimed_by = NULL, claimed_until = now() + make_interval(secs => %s)"
        " WHERE job_id = %s AND attempt = %s AND claimed_by = %s AND state = 'pending'",
        [retry_in_s, request.job_id, request.attempt, owner])


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    job_id: UUID
    attempt: int
    tenant_id: str
    providers: str
    candidates: int
    cost_micro_usd: int
    expected_cost_micro_usd: int
    started_at: datetime
    next_index: int
    stop_reason: str | None
    calls: tuple[dict[str, Any], ...] = ()  # ProviderCall, as JSON


@dataclass(frozen=True, slots=True)
class Announcing:
    """The event an attempt's close announces, made for the job's spend it expects after the
    attempt (`spent_micro_usd`)."""

    row: OutboxRow
    spent_micro_usd: int


@dataclass(frozen=True, slots=True)
class Closed:
    """An attempt closed: the job's spend after it, and whether the close added its event."""

    spent_micro_usd: int
    announced: bool


CLOSE = (
    "WITH finished AS (UPDATE attempt_requests SET state = 'done' WHERE job_id = %s AND attempt = %s"
    "  AND state = 'pending' AND claimed_by = %s RETURNING job_id),"
    " recorded AS (INSERT INTO attempts (job_id, attempt, tenant_id, provider, candidates, cost_micro_usd,"
    "  expected_cost_micro_usd, calls, stop_reason, started_at) SELECT job_id, %s, %s, %s, %s, %s, %s, %s, %s, %s"
    "  FROM finished),"
    " spent AS (UPDATE jobs SET spent_micro_usd = spent_micro_usd + %s, next_index = GREATEST(next_index, %s),"
    "  final = final OR %s, stop_reason = COALESCE(%s, stop_reason)"
    "  WHERE job_id = (SELECT job_id FROM finished) RETURNING spent_micro_usd)")


async def close_attempt(conn: Conn, request: QueuedAttempt, *, owner: str, record: AttemptRecord,
                        announcing: Announcing | None = None) -> Closed | None:
    """In one statement: mark the attempt done, store its outcome and add it to its job, and
    add the event `announcing` where the job's spend after it is the one the event was made
    for (else the caller announces the spend as it is); None (nothing changed) if `owner` no
    longer holds the attempt (its outcome must not be published)."""
    params = [request.job_id, request.attempt, owner, request.attempt, record.tenant_id, record.providers,
              record.candidates, record.cost_micro_usd, record.expected_cost_micro_usd, json.dumps(list(record.calls)),
              record.stop_reason, record.started_at, record.cost_micro_usd, record.next_index,
              record.stop_reason is not None, record.stop_reason]
    announce = ""
    if announcing is not None:
        staged, staged_params = staged_event(announcing.row, "spent WHERE spent.spent_micro_usd = %s")
        announce, params = f", announced AS ({staged})", [*params, *staged_params, announcing.spent_micro_usd]
    row = await (await conn.execute(f"{CLOSE}{announce} SELECT spent_micro_usd FROM spent", params)).fetchone()
    if row is None:
        return None
    spent: int = row["spent_micro_usd"]
    return Closed(spent, announced=announcing is not None and spent == announcing.spent_micro_usd)


@dataclass(frozen=True, slots=True)
class JobVerdicts:
    """The scorer's verdicts on one job's candidates: (passed, failed) per provider."""

    job_id: UUID
    by_provider: dict[str, tuple[float, float]]


async def add_verdicts(conn: Conn, verdicts: JobVerdicts, *, half_life_s: float,
                       claim: InboxClaim | None = None) -> list[dict[str, Any]]:
    """Add scored outcomes per provider under the job's template (or, for an order of a subject,
    its key: the template and the way its identity was carried), fading what was there by
    its age, in one statement, which makes `claim` too if given (then told what is fresh);
    the counts now (provider, template, passed, failed), none for a job this router never
    admitted."""
    job_id, by_provider = verdicts.job_id, verdicts.by_provider
    providers = sorted(by_provider)  # concurrent writers lock in one order
    counted = (
        "INSERT INTO pass_rates AS p (provider, template, passed, failed, updated_at)"
        " SELECT v.provider, coalesce(j.rates_key, j.template), v.passed, v.failed, now() FROM jobs j,"
        " unnest(%(providers)s::text[], %(passed)s::float8[], %(failed)s::float8[]) WITH ORDINALITY"
        "  AS v(provider, passed, failed, n)"
        " WHERE j.job_id = %(job)s ORDER BY v.n"
        " ON CONFLICT (provider, template) DO UPDATE SET"
        " passed = p.passed * power(0.5, extract(epoch FROM now() - p.updated_at)::float8 / %(half_life)s)"
        " + EXCLUDED.passed,"
        " failed = p.failed * power(0.5, extract(epoch FROM now() - p.updated_at)::float8 / %(half_life)s)"
        " + EXCLUDED.failed,"
        " updated_at = now() RETURNING p.provider, p.template, p.passed, p.failed")
    params = {"providers": providers, "passed": [by_provider[p][0] for p in providers],
              "failed": [by_provider[p][1] for p in providers], "job": job_id, "half_life": half_life_s}
    if claim is None:
        return await (await conn.execute(counted, params)).fetchall()
    rows = await (await conn.execute(*claim.first_by_name(
        f"WITH counted AS ({counted})"
        " SELECT (SELECT ids FROM claimed_ids) AS claimed, counted.* FROM (SELECT) AS one LEFT JOIN counted ON true",
        params))).fetchall()
    claim.fresh(rows[0]["claimed"])
    return [{k: v for k, v in row.items() if k != "claimed"} for row in rows if row["provider"] is not None]


async def verdict_counts(conn: Conn) -> list[dict[str, Any]]:
    """Every (provider, template) with its faded counts and their age in seconds."""
    return await (await conn.execute(
        "SELECT provider, template, passed, failed, extract(epoch FROM now() - updated_at)::float8 AS age_s"
        " FROM pass_rates")).fetchall()


class RemoteJobs:
    """The journal of remote jobs (`providers/journal.py`) in PostgreSQL: each write commits
    before it returns, so a job is on record before its first poll."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def started(self, key: RemoteJobKey, handle: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO remote_jobs (job_id, attempt, capability, provider, start_index, count, handle)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (job_id, attempt, capability, provider,"
                " start_index, count) DO UPDATE SET handle = EXCLUDED.handle, state = 'running',"
                " started_at = now(), ended_at = NULL", [*_key_values(key), Jsonb(handle)])

    async def ended(self, key: RemoteJobKey, state: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE remote_jobs SET state = %s, ended_at = now() WHERE job_id = %s AND attempt = %s"
                " AND capability = %s AND provider = %s AND start_index = %s AND count = %s",
                [state, *_key_values(key)])

    async def resumable(self, key: RemoteJobKey) -> RemoteJob | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT handle, state FROM remote_jobs WHERE job_id = %s AND attempt = %s AND capability = %s"
                " AND provider = %s AND start_index = %s AND count = %s AND state = ANY(%s)",
                [*_key_values(key), sorted(RESUMABLE)])).fetchone()
        return RemoteJob(key, row["handle"], row["state"]) if row else None

    async def unfinished(self, job_id: str, attempt: int, *, capability: str) -> list[RemoteJob]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT provider, start_index, count, handle, state FROM remote_jobs WHERE job_id = %s"
                " AND attempt = %s AND capability = %s AND state = ANY(%s) ORDER BY start_index",
                [job_id, attempt, capability, sorted(RESUMABLE)])).fetchall()
        return [RemoteJob(RemoteJobKey(job_id=job_id, attempt=attempt, capability=capability, provider=row["provider"], start_index=row["start_index"], count=row["count"]),
                          row["handle"], row["state"]) for row in rows]


def _key_values(key: RemoteJobKey) -> list[Any]:
    return [key.job_id, key.attempt, key.capability, key.provider, key.start_index, key.count]
