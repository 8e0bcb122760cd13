"""Ledger handlers: events in, credits moved, events out — a batch per transaction.

Every operation loads the state it touches into a `Book` (locking it), lets the pure
domain decide, and writes back what changed, in the same transaction as the inbox and
outbox rows.
"""

from datetime import datetime
from typing import TypeAlias, assert_never

from services.common import contracts
from services.common.bus import Consumption, Envelope
from services.common.contracts import (
    AuditRecorded,
    CandidatesGenerated,
    DeliveryFailed,
    Event,
    GenerationFailed,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobCanceled,
    JobClosed,
    JobDelivered,
    JobErased,
    JobSubmitted,
    OutputReported,
    ScoringFailed,
)
from services.ledger import training
from services.ledger.domain import Book
from services.ledger.records import DeliveryRecord, ProviderCost

# What the ledger consumes, declared once: the events its book decides on (`decide`, whose match
# ends in assert_never, so one added here without its branch fails the type check; app.py applies
# them a batch per transaction) and those on the topics it reads that it has no use for. Its
# subscription is derived from it, and a type on those topics in neither union keeps it from starting.
Consumed: TypeAlias = (JobSubmitted | JobDelivered | GenerationFailed | ScoringFailed | DeliveryFailed
                       | CandidatesGenerated | OutputReported | JobCanceled | JobClosed | AuditRecorded | JobErased
                       | IdentityPlanned | IdentityTrained | IdentityTrainingFailed)
PassedOver: TypeAlias = (
    contracts.JobCancelRequested | contracts.JobFinished | contracts.JobProgressed | contracts.RetentionSet
    | contracts.AttemptStarted | contracts.CandidatesStored | contracts.CandidatesChecked | contracts.CandidatesScored
    | contracts.RegenerationRequested | contracts.WebhookSent | contracts.SubjectChanged
)
CONSUMES = Consumption.of("ledger", Consumed, passed_over=PassedOver)
# Each settles its job's reservation; the first to arrive settles it, the others change nothing.
SETTLING = (JobDelivered, GenerationFailed, ScoringFailed, DeliveryFailed, JobCanceled, JobClosed)


def kept_aside(envelope: Envelope) -> bool:
    """Events the ledger keeps (audit records) or acts on (erasures) without its book."""
    return isinstance(envelope.event, AuditRecorded | JobErased)


def consumed(event: Event) -> Consumed:
    assert isinstance(event, Consumed), f"the ledger consumes no {event.event_type}"  # on_batch(CONSUMES.handled)
    return event


def decide(book: Book, event: Consumed, *, now: datetime) -> list[Event | None]:
    match event:
        case JobSubmitted():
            return [training.reserve(book, event.job, now=now)]
        case JobDelivered():
            delivered = DeliveryRecord(len(event.images), [i.duration_ms for i in event.images])
            return [*training.released_with_job(book, event.job_id, now=now), book.settle(event.job_id, delivered, now=now)]
        case GenerationFailed() | ScoringFailed() | DeliveryFailed():
            # The platform's failure costs nothing.
            return [*training.released_with_job(book, event.job_id, now=now),
                    book.settle(event.job_id, DeliveryRecord(outcome="voided"), now=now)]
        case JobCanceled() | JobClosed():
            return [*training.released_with_job(book, event.job_id, now=now), book.close(event, now)]
        case IdentityPlanned() | IdentityTrained() | IdentityTrainingFailed():
            return [training.on_identity(book, event, now=now)]
        case CandidatesGenerated():
            for provider, cost in costs_by_provider(event).items():
                book.record_provider_cost(ProviderCost(job_id=event.job_id, attempt=event.attempt, provider=provider, cost_micro_usd=cost))
            return []
        case OutputReported():
            return [book.report(event)]
        case AuditRecorded() | JobErased():  # kept aside, never in the book (kept_aside)
            return []
        case _:
            assert_never(event)


def costs_by_provider(event: CandidatesGenerated) -> dict[str, int]:
    """The attempt's spend per provider called (fallbacks included), from its calls; what the
    calls do not account for goes to the provider of its first candidate."""
    costs: dict[str, int] = {}
    for call in event.calls:
        costs[call.provider] = costs.get(call.provider, 0) + call.cost_micro_usd
    rest = event.cost_micro_usd - sum(costs.values())
    if rest > 0 or not costs:
        provider = event.candidates[0].provider if event.candidates else "unknown"
        costs[provider] = costs.get(provider, 0) + max(rest, 0)
    return costs
