"""Ingest handlers: project every service's job events into the job read model and its log;
an order's identity events (the router's) move its subject too (SubjectChanged)."""

import logging
from dataclasses import dataclass
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
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobCanceled,
    JobDelivered,
    JobEvent,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
    TrainingSettled,
)
from services.common.db import Conn
from services.ingest import store
from services.ingest.jobs.domain import apply_event
from services.ingest.jobs.projection import commit_changes
from services.ingest.receipts.document import Signer
from services.ingest.receipts.issuing import Issuance
from services.ingest.settings import IngestSettings
from services.ingest.subjects.changes import moved_by_identity

log = logging.getLogger(__name__)
PROJECTED = (CreditsReserved, ReservationRejected, ReservationSettled, AttemptStarted, CandidatesGenerated, CandidatesChecked,
             GenerationFailed, RegenerationRequested, CandidatesScored, ScoringFailed, JobDelivered, DeliveryFailed, CreditsRefunded,
             RetryTokenIssued, ReportDeclined, JobCanceled, IdentityPlanned, IdentityTrained, IdentityTrainingFailed,
             TrainingSettled)
IDENTITY_EVENTS = (IdentityPlanned, IdentityTrained, IdentityTrainingFailed)


@dataclass(frozen=True)
class Projection:
    """What projecting needs besides the batch: the receipts' signer, and the settings a
    subject's view is shown with."""

    signer: Signer
    settings: IngestSettings


async def project_batch(conn: Conn, claim: InboxClaim, publish: Publish, *,
                        projection: Projection) -> None:
    """Apply a fetch's events in one transaction: each job's row is locked once (in the
    statement that claims the batch), its events applied in their order, a job shown final
    gets its signed receipt, its view is written once, and every log entry appended at once.
    An identity event moves its subject first (SubjectChanged, published with the batch)."""
    views = await store.claim_and_lock_views(conn, claim)
    if not claim.claimed:
        return
    changes: list[store.Change] = []
    causes: list[Envelope] = []
    for envelope in claim.claimed:
        event = envelope.event
        assert isinstance(event, JobEvent), f"ingest projects job events only, not {event.event_type}"
        if isinstance(event, IDENTITY_EVENTS) and (moved := await moved_by_identity(conn, event,
                                                                                    settings=projection.settings)):
            await publish([(moved, envelope)])
        before = views.get(event.job_id)
        if before is None:
            log.warning("%s for unknown job %s ignored", event.event_type, event.job_id)
            continue
        views[event.job_id] = after = apply_event(before, event, at=envelope.time)
        changes.append(store.Change(before=before, after=after, event=event, at=envelope.time))
        causes.append(envelope)
    await commit_changes(conn, changes, issuance=Issuance(projection.signer, datetime.now(UTC)),
                         announce=lambda announcements: publish.statement(
                             [(announcement, causes[index]) for announcement, index in announcements]))


def register(consumer: EventConsumer, projection: Projection) -> None:
    consumer.on_batch(PROJECTED, partial(project_batch, projection=projection))
