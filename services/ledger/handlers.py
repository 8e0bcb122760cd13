"""Ledger handlers: reserve on submission, settle on delivery or failure."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg

from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import (
    CreditsGranted,
    CreditsReserved,
    DeliveryFailed,
    GenerationFailed,
    JobDelivered,
    JobSubmitted,
    ReservationRejected,
    ReservationSettled,
    ScoringFailed,
)
from services.ledger import domain
from services.ledger.settings import LedgerSettings


async def available_credits(conn: psycopg.AsyncConnection, tenant_id: str) -> int | None:
    row = await (
        await conn.execute("SELECT posted - pending AS available FROM accounts WHERE tenant_id = %s", [tenant_id])
    ).fetchone()
    return None if row is None else row["available"]


async def hold_credits(conn: psycopg.AsyncConnection, tenant_id: str, amount: int) -> bool:
    """The guarded update decides: it holds `amount` only while the balance covers it."""
    cur = await conn.execute(
        "UPDATE accounts SET pending = pending + %s, updated_at = now()"
        " WHERE tenant_id = %s AND posted - pending >= %s",
        [amount, tenant_id, amount],
    )
    return cur.rowcount == 1


async def reserve_credits(ctx: HandlerContext, event: JobSubmitted, settings: LedgerSettings) -> None:
    job = event.job
    known = await (await ctx.conn.execute("SELECT 1 FROM transfers WHERE job_id = %s", [job.job_id])).fetchone()
    if known:
        return  # the same job submitted again under another event id
    amount = domain.job_price(settings.unit_prices, job.template, job.images)
    if amount is None:
        await reject(ctx, event, "unknown_template", f"no price for template {job.template!r}", 0, 0)
        return
    if not await hold_credits(ctx.conn, job.tenant_id, amount):
        available = await available_credits(ctx.conn, job.tenant_id)
        if available is None:
            await reject(ctx, event, "unknown_account", f"tenant {job.tenant_id!r} has no credit account", amount, 0)
        else:
            reason = domain.insufficient_credits_reason(amount, available)
            await reject(ctx, event, "insufficient_credits", reason, amount, available)
        return
    transfer_id = uuid4()
    timeout_at = datetime.now(UTC) + timedelta(seconds=settings.reservation_timeout_s)
    await ctx.conn.execute(
        "INSERT INTO transfers (id, job_id, tenant_id, amount, unit_price, images, state, timeout_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s)",
        [transfer_id, job.job_id, job.tenant_id, amount, amount // job.images, job.images, timeout_at],
    )
    await add_entry(ctx.conn, job.tenant_id, transfer_id, "reserve", amount, None)
    await ctx.emit(CreditsReserved(job_id=job.job_id, tenant_id=job.tenant_id, job=job,
                                   transfer_id=transfer_id, amount=amount, unit_price=amount // job.images))


async def reject(ctx: HandlerContext, event: JobSubmitted, code: str, reason: str, required: int, available: int) -> None:
    await ctx.emit(ReservationRejected(job_id=event.job_id, tenant_id=event.tenant_id, reason_code=code,
                                       reason=reason, required=required, available=available))


async def settle_reservation(ctx: HandlerContext, job_id: UUID, delivered: int) -> None:
    transfer = await (
        await ctx.conn.execute("SELECT * FROM transfers WHERE job_id = %s AND state = 'pending' FOR UPDATE", [job_id])
    ).fetchone()
    if transfer is None:
        return  # never reserved, or settled already: settlement happens once
    s = domain.settle(transfer["amount"], transfer["unit_price"], transfer["images"], delivered)
    await ctx.conn.execute(
        "UPDATE transfers SET state = %s, charged = %s, settled_at = now() WHERE id = %s",
        ["posted" if s.charged else "voided", s.charged, transfer["id"]],
    )
    await ctx.conn.execute(
        "UPDATE accounts SET pending = pending - %s, posted = posted - %s, updated_at = now() WHERE tenant_id = %s",
        [transfer["amount"], s.charged, transfer["tenant_id"]],
    )
    await add_entry(ctx.conn, transfer["tenant_id"], transfer["id"], "charge", s.charged, None)
    await add_entry(ctx.conn, transfer["tenant_id"], transfer["id"], "release", s.released, None)
    await ctx.emit(ReservationSettled(job_id=job_id, tenant_id=transfer["tenant_id"], transfer_id=transfer["id"],
                                      reserved=transfer["amount"], charged=s.charged, released=s.released,
                                      delivered_images=min(delivered, transfer["images"])))


async def add_entry(conn, tenant_id: str, transfer_id: UUID | None, kind: str, amount: int, reason: str | None) -> None:
    await conn.execute(
        "INSERT INTO entries (tenant_id, transfer_id, kind, amount, reason) VALUES (%s, %s, %s, %s, %s)",
        [tenant_id, transfer_id, kind, amount, reason],
    )


async def grant_credits(conn: psycopg.AsyncConnection, tenant_id: str, amount: int, reason: str) -> CreditsGranted:
    """Add credits to an account (created on first grant); the caller emits the event."""
    if amount <= 0:
        raise ValueError("a grant must be a positive number of credits")
    row = await (
        await conn.execute(
            "INSERT INTO accounts (tenant_id, posted) VALUES (%s, %s) ON CONFLICT (tenant_id)"
            " DO UPDATE SET posted = accounts.posted + EXCLUDED.posted, updated_at = now()"
            " RETURNING posted - pending AS available",
            [tenant_id, amount],
        )
    ).fetchone()
    await add_entry(conn, tenant_id, None, "grant", amount, reason)
    return CreditsGranted(tenant_id=tenant_id, amount=amount, reason=reason, available_after=row["available"])


def register(consumer: EventConsumer, settings: LedgerSettings) -> None:
    @consumer.on(JobSubmitted)
    async def on_job_submitted(ctx: HandlerContext, event: JobSubmitted) -> None:
        await reserve_credits(ctx, event, settings)

    @consumer.on(JobDelivered)
    async def on_job_delivered(ctx: HandlerContext, event: JobDelivered) -> None:
        await settle_reservation(ctx, event.job_id, delivered=len(event.images))

    for failure in (GenerationFailed, ScoringFailed, DeliveryFailed):
        consumer.on(failure)(on_platform_failure)


async def on_platform_failure(ctx: HandlerContext, event) -> None:
    """A job that fails for platform reasons costs nothing."""
    await settle_reservation(ctx, event.job_id, delivered=0)
