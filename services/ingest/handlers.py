"""Ingest handlers: project every service's job events into the job read model and its log."""

import logging
from datetime import UTC, datetime
from functools import partial

from services.common.bus import Envelope, EventConsumer, InboxClaim, Publish
from services.common.contracts import (
    AttemptStarted,
    CandidatesChecked,
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
from services.common.db import Conn
from services.ingest import store
from services.ingest.jobs.domain import apply_event
from services.ingest.jobs.projection import commit_changes
from services.ingest.receipts.document import Signer
from services.ingest.receipts.issuing import Issuance

log = logging.getLogger(__name__)
PROJECTED = (CreditsReserved, ReservationRejected, ReservationSettled, AttemptStarted, CandidatesGenerated, CandidatesChecked,
             GenerationFailed, RegenerationRequested, CandidatesScored, ScoringFailed, JobDelivered, DeliveryFailed, CreditsRefunded,
             RetryTokenIssued, ReportDeclined, JobCanceled)


async def project_batch(conn: Conn, claim: InboxClaim, publish: Publish,
                        signer: Signer) -> None:
    """Apply a fetch's events in one transaction: each job's row is locked once (in the
    statement that claims the batch), its events applied in their order, a job shown final
    gets its signed receipt, its view is written once, and every log entry appended at once."""
    views = await store.claim_and_lock_views(conn, claim)
    if not claim.claimed:
        return
    changes: list[store.Change] = []
    causes: list[Envelope] = []
    for envelope in claim.claimed:
        event = envelope.event
        assert isinstance(event, JobEvent), f"ingest projects job events only, not {event.event_type}"
        before = views.get(event.job_id)
        if before is None:
            log.warning("%s for unknown job %s ignored", event.event_type, event.job_id)
            continue
        views[event.job_id] = after = apply_event(before, event, envelope.time)
        changes.append(store.Change(before, after, event, envelope.time))
        causes.append(envelope)
    await commit_changes(conn, changes, Issuance(signer, datetime.now(UTC)), announce=lambda announcements: publish.statement(
        [(announcement, causes[index]) for announcement, index in announcements]))


def register(consumer: EventConsumer, signer: Signer) -> None:
    consumer.on_batch(PROJECTED, partial(project_batch, signer=signer))
