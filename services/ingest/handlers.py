"""Ingest handlers: project every service's job events into the job read model."""

import logging

from services.common import telemetry
from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import (
    CandidatesGenerated,
    CandidatesScored,
    CreditsRefunded,
    CreditsReserved,
    DeliveryFailed,
    GenerationFailed,
    JobDelivered,
    JobEvent,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
)
from services.ingest.domain import JobView, apply_event

log = logging.getLogger(__name__)
PROJECTED = (CreditsReserved, ReservationRejected, ReservationSettled, CandidatesGenerated, GenerationFailed,
             RegenerationRequested, CandidatesScored, ScoringFailed, JobDelivered, DeliveryFailed, CreditsRefunded,
             RetryTokenIssued, ReportDeclined)


async def project(ctx: HandlerContext, event: JobEvent) -> None:
    row = await (await ctx.conn.execute("SELECT view FROM jobs WHERE id = %s FOR UPDATE", [event.job_id])).fetchone()
    if row is None:
        log.warning("%s for unknown job %s ignored", event.event_type, event.job_id)
        return
    before = JobView.model_validate(row["view"])
    after = apply_event(before, event, ctx.envelope.time)
    await ctx.conn.execute(
        "UPDATE jobs SET state = %s, view = %s, updated_at = %s WHERE id = %s",
        [after.state, after.stored_json(), after.updated_at, after.id],
    )
    if after.final and not before.final:
        telemetry.JOBS_FINISHED.labels(after.state).inc()


def register(consumer: EventConsumer) -> None:
    for event_type in PROJECTED:
        consumer.on(event_type)(project)
