"""A job's training line, without I/O: credits for training its subject's identity, held with
the job as a pending hold of its own and settled once.

* Held at reservation (`reserve`) when the job has a subject, its identity is not carried by
  reference, and the ledger has not seen an identity trained from its photo set: the price
  book's `training_credits`. The job is refused as a whole when its images and its training
  do not both fit the balance.
* Posted (charged) on IdentityTrained of that job, once per tenant, subject and identity
  (another job reporting the same identity releases its own line): only weights copied and
  checked are paid for. IdentityTrainingFailed releases it, whatever stopped the training (the
  provider, its deadline, the tenant canceling the order or erasing the subject).
* Released on IdentityPlanned without training (the job reuses an identity, or goes by
  reference), and when the job is settled with neither (`released_with_job`).

Every movement is a journal line between the tenant and the holds, as the images' are.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.common.contracts import (
    CreditsReserved,
    Event,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobSpec,
    ReservationRejected,
    TrainingSettled,
)
from services.ledger.domain import Book, assert_holds_covered, insufficient_credits_reason
from services.ledger.records import HOLDS, REVENUE, Entry, TrainingHold, tenant_account


def training_credits(book: Book, job: JobSpec) -> int:
    """What the job's training line holds: nothing without a subject, by reference, or for a
    photo set already trained."""
    subject = job.subject
    if subject is None or job.identity == "reference":
        return 0
    if (job.tenant_id, subject.subject_id, subject.photo_set_sha256) in book.trainings.trained:
        return 0
    return book.price_book.at(job.submitted_at).training_price()


def reserve(book: Book, job: JobSpec, *, now: datetime) -> Event | None:
    """The job's reservation with its training line: both held, or the job refused."""
    credits = training_credits(book, job)
    account = book.accounts.get(job.tenant_id)
    if not credits or account is None or job.job_id in book.transfers:
        return book.reserve(job, now)
    if credits > account.available:
        return ReservationRejected(job_id=job.job_id, tenant_id=job.tenant_id, reason_code="insufficient_credits",
                                   reason=f"{insufficient_credits_reason(credits, account.available)} (training the"
                                          " subject's identity, before its images)",
                                   required=credits, available=account.available)
    account.pending += credits  # held first, so the images are held from what is left
    reserved = book.reserve(job, now)
    if not isinstance(reserved, CreditsReserved):
        account.pending -= credits
        if isinstance(reserved, ReservationRejected) and reserved.reason_code == "insufficient_credits":
            required = reserved.required + credits
            return reserved.model_copy(update={
                "required": required, "available": account.available,
                "reason": f"{insufficient_credits_reason(required, account.available)} ({credits} of them to train"
                          " the subject's identity)"})
        return reserved
    assert job.subject is not None
    hold = TrainingHold(job_id=job.job_id, tenant_id=job.tenant_id, subject_id=job.subject.subject_id, photo_set_sha256=job.subject.photo_set_sha256, amount=credits)
    book.trainings.holds[job.job_id] = hold
    book.trainings.new_holds.append(hold)
    book.changed_accounts.add(job.tenant_id)
    book._journal(Entry(tenant_id=job.tenant_id, kind="reserve", amount=credits, debit_account=tenant_account(job.tenant_id), credit_account=HOLDS,
                        reason=f"training line of job {job.job_id}"))
    assert_holds_covered(account)
    spend = book.transfers[job.job_id].max_provider_spend + credits * book.credit_value_micro_usd
    return reserved.model_copy(update={"training_credits": credits, "max_provider_spend_micro_usd": spend})


@dataclass(frozen=True, kw_only=True)
class TrainingOutcome:
    """How a job's training line ends: charged or released, why, and the identity it paid for."""

    job_id: UUID
    charge: bool
    reason: str
    identity_id: UUID | None = None


def settle(book: Book, outcome: TrainingOutcome, *, now: datetime) -> TrainingSettled | None:
    """Charge or release the job's training line, once; None when it has none left pending."""
    job_id = outcome.job_id
    hold = book.trainings.holds.get(job_id)
    if hold is None or hold.state != "pending":
        return None
    account = book.accounts[hold.tenant_id]
    charged = hold.amount if outcome.charge else 0
    hold.state, hold.charged, hold.settled_at = ("posted" if charged else "voided"), charged, now
    hold.identity_id = outcome.identity_id if charged else None
    book.trainings.changed_holds.append(hold)
    account.pending -= hold.amount
    book._consume_grants(account, charged)
    book.changed_accounts.add(hold.tenant_id)
    reason = f"training line of job {job_id}"
    book._journal(Entry(tenant_id=hold.tenant_id, kind="charge", amount=charged, debit_account=HOLDS, credit_account=REVENUE, reason=reason))
    book._journal(Entry(tenant_id=hold.tenant_id, kind="release", amount=hold.amount - charged, debit_account=HOLDS, credit_account=tenant_account(hold.tenant_id),
                        reason=reason))
    assert_holds_covered(account)
    if charged and outcome.identity_id is not None:
        book.trainings.charged.add((hold.tenant_id, hold.subject_id, outcome.identity_id))
    return TrainingSettled(job_id=job_id, tenant_id=hold.tenant_id, subject_id=hold.subject_id,
                           identity_id=hold.identity_id, held=hold.amount, charged=charged,
                           released=hold.amount - charged, outcome="charged" if charged else "released",
                           reason=outcome.reason)


def on_identity(book: Book, event: IdentityPlanned | IdentityTrained | IdentityTrainingFailed,
                *, now: datetime) -> TrainingSettled | None:
    """What an identity event of a job does to its training line."""
    match event:
        case IdentityPlanned() if not event.trains:
            how = "by reference" if event.use.mode == "reference" else "with an identity trained before"
            return settle(book, TrainingOutcome(job_id=event.job_id, charge=False, reason=f"the job carries its subject {how}"), now=now)
        case IdentityPlanned():
            return None
        case IdentityTrained():
            return trained(book, event, now=now)
        case IdentityTrainingFailed() if event.tenant_fault:
            return settle(book, TrainingOutcome(job_id=event.job_id, charge=False, reason=f"the training was stopped: {event.reason}"), now=now)
        case IdentityTrainingFailed():
            return settle(book, TrainingOutcome(job_id=event.job_id, charge=False, reason=f"the training failed through no fault of yours:"
                                                             f" {event.reason}"), now=now)


def trained(book: Book, event: IdentityTrained, *, now: datetime) -> TrainingSettled | None:
    """Remember the photo set as trained; charge the job's line unless the identity was paid."""
    key = (event.tenant_id, event.subject_id, event.photo_set_sha256)
    if key not in book.trainings.trained:
        book.trainings.trained.add(key)
        book.trainings.new_trained.append((*key, event.identity_id, event.trained_at))
    if (event.tenant_id, event.subject_id, event.identity_id) in book.trainings.charged:
        return settle(book, TrainingOutcome(job_id=event.job_id, charge=False, reason=f"identity {event.identity_id} was charged before"), now=now)
    return settle(book, TrainingOutcome(job_id=event.job_id, charge=True, reason=f"identity {event.identity_id} trained by {event.provider}",
                                              identity_id=event.identity_id), now=now)


def released_with_job(book: Book, job_id: UUID, *, now: datetime) -> list[Event]:
    """The job is settled: a training line still pending trained nothing, and is released
    (its TrainingSettled; none when there is no line left pending)."""
    released = settle(book, TrainingOutcome(job_id=job_id, charge=False, reason="the job ended without training its subject's identity"), now=now)
    return [released] if released is not None else []
