"""Ingest handlers: project every service's job events into the job read model and its log;
an order's identity events (the router's) move its subject too (SubjectChanged)."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeAlias

from services.common.bus import Consumption, Envelope, EventConsumer, InboxClaim, Publish
from services.common.contracts import (
    AccountAlerted,
    AttemptStarted,
    AuditRecorded,
    AutoTopUpFailed,
    CandidatesChecked,
    CandidatesGenerated,
    CandidatesScored,
    CandidatesStored,
    CreditsExpired,
    CreditsGranted,
    CreditsReclaimed,
    CreditsRefunded,
    CreditsReserved,
    DeliveryFailed,
    EvaluationCharged,
    Event,
    GenerationFailed,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobCanceled,
    JobDelivered,
    RegenerationRequested,
    ReportDeclined,
    ReservationRejected,
    ReservationSettled,
    RetryTokenIssued,
    ScoringFailed,
    TrainingSettled,
    WebhookSent,
)
from services.common.db import Conn
from services.ingest.jobs import store
from services.ingest.jobs.domain import AnyJobEvent, apply_event
from services.ingest.jobs.finishing import commit_changes
from services.ingest.receipts import Issuance, ReceiptSigner
from services.ingest.settings import IngestSettings
from services.ingest.subjects import moved_by_identity

log = logging.getLogger(__name__)
# What ingest consumes, declared once: the other services' events about a job, which it projects
# (each is one of the read model's AnyJobEvent, whose matches end in assert_never: `as_projected`
# fails the type check for one that is not), and those on its topics it has no use for. Its
# subscription and the projection's batch are derived from it; a type on those topics in neither
# union keeps ingest from starting.
Projected: TypeAlias = (
    CreditsReserved | ReservationRejected | ReservationSettled | AttemptStarted | CandidatesGenerated
    | CandidatesChecked | GenerationFailed | RegenerationRequested | CandidatesScored | ScoringFailed | JobDelivered
    | DeliveryFailed | CreditsRefunded | RetryTokenIssued | ReportDeclined | JobCanceled | IdentityPlanned
    | IdentityTrained | IdentityTrainingFailed | TrainingSettled
)
PassedOver: TypeAlias = (
    AuditRecorded | CreditsGranted | CreditsExpired | EvaluationCharged | CreditsReclaimed | AutoTopUpFailed
    | CandidatesStored | WebhookSent | AccountAlerted
)
CONSUMES = Consumption.of("ingest", Projected, passed_over=PassedOver)
IDENTITY_EVENTS = (IdentityPlanned, IdentityTrained, IdentityTrainingFailed)


@dataclass(frozen=True)
class Projection:
    """What projecting needs besides the batch: the receipts' signer, and the settings a
    subject's view is shown with."""

    signer: ReceiptSigner
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
        event = as_projected(envelope.event)
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


def as_projected(event: Event) -> AnyJobEvent:
    """The event, one ingest projects (`on_batch(CONSUMES.handled)`); each is a job event."""
    assert isinstance(event, Projected), f"ingest projects no {event.event_type}"
    return event


def register(consumer: EventConsumer, projection: Projection) -> None:
    consumer.on_batch(CONSUMES.handled, partial(project_batch, projection=projection))
