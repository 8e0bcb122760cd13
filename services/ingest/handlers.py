"""Ingest handlers: project every service's job events into the job read model and its log."""

import logging

import psycopg

from services.common import telemetry
from services.common.bus import EventConsumer, Publish
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
    JobFinished,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
)
from services.common.envelope import Envelope
from services.ingest import store
from services.ingest.domain import apply_event, finished

log = logging.getLogger(__name__)
PROJECTED = (CreditsReserved, ReservationRejected, ReservationSettled, AttemptStarted, CandidatesGenerated,
             GenerationFailed, RegenerationRequested, CandidatesScored, ScoringFailed, JobDelivered, DeliveryFailed, CreditsRefunded,
             RetryTokenIssued, ReportDeclined, JobCanceled)


async def project_batch(conn: psycopg.AsyncConnection, envelopes: list[Envelope], publish: Publish) -> None:
    """Apply a fetch's events in one transaction: each job's row is locked once, its events
    applied in their order, its view written once, and every log entry appended at once."""
    views = await store.lock_views(conn, {e.event.job_id for e in envelopes})
    changes: list[store.Change] = []
    announcements: list[tuple[JobFinished, Envelope]] = []
    for envelope in envelopes:
        event = envelope.event
        before = views.get(event.job_id)
        if before is None:
            log.warning("%s for unknown job %s ignored", event.event_type, event.job_id)
            continue
        views[event.job_id] = after = apply_event(before, event, envelope.time)
        changes.append((before, after, event, envelope.time))
        if announcement := finished(before, after):
            announcements.append((announcement, envelope))
            telemetry.JOBS_FINISHED.labels(after.state).inc()
    await store.record_changes(conn, changes)
    await publish(announcements)


def register(consumer: EventConsumer) -> None:
    consumer.on_batch(PROJECTED, project_batch)
