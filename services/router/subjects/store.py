"""The router's tables for orders of a subject: identities (their trainings, claimed by the
router that drives them), each order's plan of how it carries its subject, the key its
verdicts are counted under, and what a rework of an order across styles misses per style."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from services.common.db import Conn
from services.router.store import Lease, QueuedAttempt

IDENTITY_COLUMNS = (
    "identity_id, tenant_id, subject_id, photo_set_sha256, provider, model, base, trigger_word, job_id, state,"
    " handle, expected_cost_micro_usd, cost_micro_usd, weights_key, weights_sha256, weights_size_bytes,"
    " provider_version, failure_code, reason, cleanup")


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """Whose identity: a tenant's subject, as one photo set shows it."""

    tenant_id: str
    subject_id: UUID
    photo_set_sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityRow:
    identity_id: UUID
    tenant_id: str
    subject_id: UUID
    photo_set_sha256: str
    provider: str
    model: str
    base: str
    trigger_word: str
    job_id: UUID
    state: str = "training"
    handle: dict[str, Any] | None = None
    expected_cost_micro_usd: int = 0
    cost_micro_usd: int | None = None
    weights_key: str | None = None
    weights_sha256: str | None = None
    weights_size_bytes: int | None = None
    provider_version: str | None = None
    failure_code: str | None = None
    reason: str | None = None
    cleanup: str | None = None
    # Seconds since the row was written (how long its training has had), when read for driving it.
    age_s: float = 0.0

    @property
    def key(self) -> SubjectKey:
        return SubjectKey(self.tenant_id, self.subject_id, self.photo_set_sha256)


def _identity(row: dict[str, Any]) -> IdentityRow:
    return IdentityRow(**{name: row[name] for name in IdentityRow.__dataclass_fields__ if name in row})


async def live_identity(conn: Conn, key: SubjectKey) -> IdentityRow | None:
    """The identity of this subject and photo set that is training or trained, if any."""
    row = await (await conn.execute(
        f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE tenant_id = %s AND subject_id = %s"
        " AND photo_set_sha256 = %s AND state IN ('training', 'trained')",
        [key.tenant_id, key.subject_id, key.photo_set_sha256])).fetchone()
    return _identity(row) if row else None


# A training its tenant stopped (an order canceled, a subject erased) says nothing of its trainer.
STOPPED_BY_TENANT = ("canceled", "subject_erased")


async def identities_so_far(conn: Conn, key: SubjectKey) -> tuple[IdentityRow | None, set[str]]:
    """What planning an order of this subject and photo set needs, in one statement: its live
    identity (training or trained), if any, and the trainers whose training of it failed at
    the provider."""
    rows = await (await conn.execute(
        f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE tenant_id = %s AND subject_id = %s"
        " AND photo_set_sha256 = %s AND state IN ('training', 'trained', 'failed')",
        [key.tenant_id, key.subject_id, key.photo_set_sha256])).fetchall()
    live = next((_identity(row) for row in rows if row["state"] in ("training", "trained")), None)
    failed = {row["provider"] for row in rows if row["state"] == "failed" and row["failure_code"] not in STOPPED_BY_TENANT}
    return live, failed


async def identity(conn: Conn, identity_id: UUID) -> IdentityRow | None:
    row = await (await conn.execute(f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE identity_id = %s",
                                    [identity_id])).fetchone()
    return _identity(row) if row else None


async def new_identity(conn: Conn, row: IdentityRow) -> bool:
    """Write a training down before it is submitted; False if the subject's photo set has a
    live identity already (another order won the race: it trains, this one waits for it)."""
    cur = await conn.execute(
        "INSERT INTO identities (identity_id, tenant_id, subject_id, photo_set_sha256, provider, model, base,"
        " trigger_word, job_id, expected_cost_micro_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, subject_id, photo_set_sha256) WHERE state IN ('training', 'trained') DO NOTHING",
        [row.identity_id, row.tenant_id, row.subject_id, row.photo_set_sha256, row.provider, row.model, row.base,
         row.trigger_word, row.job_id, row.expected_cost_micro_usd])
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPlan:
    """How one order carries its subject: the way, the identity it uses (lora), whether it
    trains it, and the provider and model named for it (the trainer's, or the reference model's)."""

    job_id: UUID
    subject_id: UUID
    mode: str
    identity_id: UUID | None = None
    trains: bool = False
    provider: str = ""
    model: str = ""


async def job_plan(conn: Conn, job_id: UUID) -> JobPlan | None:
    row = await (await conn.execute(
        "SELECT job_id, subject_id, mode, identity_id, trains, provider, model FROM job_identities WHERE job_id = %s",
        [job_id])).fetchone()
    return JobPlan(**row) if row else None


async def plan_job(conn: Conn, plan: JobPlan, *, rates_key: str) -> bool:
    """Write the order's plan and the key its verdicts are counted under; False if it was planned
    before (a run of the attempt that planned it died), when nothing changes."""
    cur = await conn.execute(
        "INSERT INTO job_identities (job_id, subject_id, mode, identity_id, trains, provider, model)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
        [plan.job_id, plan.subject_id, plan.mode, plan.identity_id, plan.trains, plan.provider, plan.model])
    if cur.rowcount == 1:
        await conn.execute("UPDATE jobs SET rates_key = %s WHERE job_id = %s", [rates_key, plan.job_id])
    return cur.rowcount == 1


async def plan_by_reference(conn: Conn, plan: JobPlan, *, rates_key: str) -> bool:
    """The order goes on by reference, its training having failed; False if it was moved before."""
    cur = await conn.execute(
        "UPDATE job_identities SET mode = 'reference', trains = false, provider = %s, model = %s, planned_at = now()"
        " WHERE job_id = %s AND mode = 'lora'", [plan.provider, plan.model, plan.job_id])
    if cur.rowcount == 1:
        await conn.execute("UPDATE jobs SET rates_key = %s WHERE job_id = %s", [rates_key, plan.job_id])
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True)
class Deferral:
    """An attempt put back until its identity is trained: by which router, looked at again after `retry_in_s`."""

    owner: str
    retry_in_s: float


async def defer_attempt(conn: Conn, request: QueuedAttempt, *, deferral: Deferral) -> None:
    """Give the attempt's claim back without counting the run as a try (it waited, it did not
    fail); the training that ends wakes it sooner (`wake_waiting`)."""
    await conn.execute(
        "UPDATE attempt_requests SET claimed_by = NULL, claimed_until = now() + make_interval(secs => %s),"
        " tries = GREATEST(tries - 1, 1) WHERE job_id = %s AND attempt = %s AND claimed_by = %s AND state = 'pending'",
        [deferral.retry_in_s, request.job_id, request.attempt, deferral.owner])


async def needed_by_style(conn: Conn, job_id: UUID, *, attempt: int) -> dict[str, int] | None:
    row = await (await conn.execute("SELECT needed_by_style FROM attempt_requests WHERE job_id = %s AND attempt = %s",
                                    [job_id, attempt])).fetchone()
    return row["needed_by_style"] if row else None


async def note_needed_by_style(conn: Conn, request: QueuedAttempt, *, needed: dict[str, int]) -> None:
    await conn.execute("UPDATE attempt_requests SET needed_by_style = %s WHERE job_id = %s AND attempt = %s",
                       [Jsonb(needed), request.job_id, request.attempt])


# ---- driving trainings -----------------------------------------------------------------


async def claim_identities(conn: Conn, lease: Lease, *, limit: int) -> list[IdentityRow]:
    """Identities with work owed (a training to drive, a cleanup) that no live router holds, now `lease.owner`'s."""
    rows = await (await conn.execute(
        f"WITH free AS (SELECT identity_id FROM identities WHERE (state = 'training' OR cleanup IS NOT NULL)"
        "  AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        " UPDATE identities i SET claimed_by = %s, claimed_until = now() + make_interval(secs => %s)"
        f" FROM free WHERE i.identity_id = free.identity_id RETURNING"
        f" {', '.join('i.' + c.strip() for c in IDENTITY_COLUMNS.split(','))},"
        " extract(epoch FROM now() - i.created_at)::float8 AS age_s",
        [limit, lease.owner, lease.lease_s])).fetchall()
    return [_identity(row) for row in rows]


async def renew_identity_claims(conn: Conn, lease: Lease, *, identity_ids: list[UUID]) -> None:
    await conn.execute(
        "UPDATE identities SET claimed_until = now() + make_interval(secs => %s)"
        " WHERE claimed_by = %s AND identity_id = ANY(%s)", [lease.lease_s, lease.owner, identity_ids])


async def release_identity(conn: Conn, identity_id: UUID, *, owner: str) -> None:
    await conn.execute("UPDATE identities SET claimed_by = NULL, claimed_until = NULL"
                       " WHERE identity_id = %s AND claimed_by = %s", [identity_id, owner])


async def current_state(conn: Conn, identity_id: UUID) -> tuple[str, str | None]:
    """The identity's state and owed cleanup now (a cancel or an erasure may have come meanwhile)."""
    row = await (await conn.execute("SELECT state, cleanup FROM identities WHERE identity_id = %s",
                                    [identity_id])).fetchone()
    return (row["state"], row["cleanup"]) if row else ("erased", None)


async def training_submitted(conn: Conn, row: IdentityRow, *, owner: str) -> bool:
    """Write the training's handle down, before its first poll; False if it was canceled or
    erased meanwhile, or another router holds it now."""
    cur = await conn.execute(
        "UPDATE identities SET handle = %s, submitted_at = now() WHERE identity_id = %s AND state = 'training'"
        " AND claimed_by = %s", [Jsonb(row.handle), row.identity_id, owner])
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingEnd:
    """How a training ended: trained (its weights' copy, what it cost, the version it pushed) or
    not (why, and whether its provider must still be told to cancel)."""

    identity_id: UUID
    owner: str
    state: str
    cost_micro_usd: int | None = None
    weights_key: str | None = None
    weights_sha256: str | None = None
    weights_size_bytes: int | None = None
    provider_version: str | None = None
    failure_code: str | None = None
    reason: str | None = None


async def training_ended(conn: Conn, end: TrainingEnd) -> bool:
    """Record the end of a training this router drives and wake the attempts that wait for it;
    False if it ended otherwise meanwhile (canceled, erased) or another router holds it. The
    local trainer's handle carries its weights until then: the bucket's copy is the one kept."""
    cur = await conn.execute(
        "UPDATE identities SET state = %s, cost_micro_usd = %s, weights_key = %s, weights_sha256 = %s,"
        " weights_size_bytes = %s, provider_version = %s, failure_code = %s, reason = %s, ended_at = now(),"
        " handle = handle - 'weights'"
        " WHERE identity_id = %s AND state = 'training' AND claimed_by = %s",
        [end.state, end.cost_micro_usd, end.weights_key, end.weights_sha256, end.weights_size_bytes,
         end.provider_version, end.failure_code, end.reason, end.identity_id, end.owner])
    if cur.rowcount == 1:
        await wake_waiting(conn, end.identity_id)
    return cur.rowcount == 1


async def wake_waiting(conn: Conn, identity_id: UUID) -> None:
    """Attempts put back to wait for this identity may be taken at once."""
    await conn.execute(
        "UPDATE attempt_requests SET claimed_until = NULL WHERE state = 'pending' AND claimed_by IS NULL"
        " AND job_id IN (SELECT job_id FROM job_identities WHERE identity_id = %s)", [identity_id])


async def cleaned(conn: Conn, identity_id: UUID, *, owner: str) -> None:
    """The cleanup owed is done: an erased identity keeps no key to weights that are gone, and no
    handle (the local trainer's held its weights)."""
    await conn.execute(
        "UPDATE identities SET cleanup = NULL, claimed_by = NULL, claimed_until = NULL,"
        " weights_key = CASE WHEN state = 'erased' THEN NULL ELSE weights_key END,"
        " handle = CASE WHEN state = 'erased' THEN NULL ELSE handle END"
        " WHERE identity_id = %s AND claimed_by = %s", [identity_id, owner])


# ---- cancels and erasures (the consumer's) ----------------------------------------------


async def cancel_trainings_of(conn: Conn, job_id: UUID) -> list[IdentityRow]:
    """The trainings this order started and still runs, canceled: the provider is told by the
    router that drives them (cleanup `cancel`, where it was submitted), the orders waiting woken."""
    rows = await (await conn.execute(
        "UPDATE identities SET state = 'canceled', failure_code = 'canceled', reason = 'the order was canceled',"
        " ended_at = now(), cleanup = CASE WHEN handle IS NULL THEN NULL ELSE 'cancel' END,"
        " claimed_until = CASE WHEN handle IS NULL THEN claimed_until ELSE NULL END"
        f" WHERE job_id = %s AND state = 'training' RETURNING {IDENTITY_COLUMNS}", [job_id])).fetchall()
    for row in rows:
        await wake_waiting(conn, row["identity_id"])
    return [_identity(row) for row in rows]


async def erase_identities(conn: Conn, tenant_id: str, *, subject_id: UUID) -> list[IdentityRow]:
    """Every identity of the subject, erased (its weights, its copy at the provider and a
    training still running are cleaned up by the router that takes the row); as they were."""
    rows = await (await conn.execute(
        f"WITH was AS (SELECT {IDENTITY_COLUMNS} FROM identities WHERE tenant_id = %s AND subject_id = %s"
        "  AND state <> 'erased' FOR UPDATE)"
        " UPDATE identities i SET state = 'erased', cleanup = 'erase', claimed_until = NULL,"
        "  ended_at = coalesce(i.ended_at, now()) FROM was WHERE i.identity_id = was.identity_id"
        f" RETURNING {', '.join('was.' + c.strip() for c in IDENTITY_COLUMNS.split(','))}",
        [tenant_id, subject_id])).fetchall()
    for row in rows:
        await wake_waiting(conn, row["identity_id"])
    return [_identity(row) for row in rows]
