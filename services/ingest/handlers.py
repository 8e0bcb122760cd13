"""Ingest handlers: project every service's job events into the job read model and its log."""

import logging

from services.common import telemetry
from services.common.bus import EventConsumer, HandlerContext
from services.common.contracts import (
    AttemptStarted,
    CandidatesGenerated,
    CandidatesScored,
    CreditsRefunded,
    CreditsReserved,
    DeliveryFailed,
    GenerationFailed,
    JobCanceled,
    JobDelivered,
    JobEvent,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
)
from services.ingest import store
from services.ingest.domain import apply_event, finished

log = logging.getLogger(__name__)
PROJECTED = (CreditsReserved, ReservationRejected, ReservationSettled, AttemptStarted, CandidatesGenerated,
             GenerationFailed, RegenerationRequested, CandidatesScored, ScoringFailed, JobDelivered, DeliveryFailed, CreditsRefunded,
             RetryTokenIssued, ReportDeclined, JobCanceled)


async def project(ctx: HandlerContext, event: JobEvent) -> None:
    before = await store.read_view(ctx.conn, event.job_id, lock=True)
    if before is None:
        log.warning("%s for unknown job %s ignored", event.event_type, event.job_id)
        return
    after = apply_event(before, event, ctx.envelope.time)
    await store.record(ctx.conn, before, after, event, ctx.envelope.time)
    if announcement := finished(before, after):
        await ctx.emit(announcement)
        telemetry.JOBS_FINISHED.labels(after.state).inc()


def register(consumer: EventConsumer) -> None:
    for event_type in PROJECTED:
        consumer.on(event_type)(project)
