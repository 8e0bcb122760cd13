"""The ledger's records, without I/O: accounts, two-phase transfers, grants and the
double-entry journal's lines, and the names of the platform's accounts they move credits
between; and what a book is asked to decide on (a grant, a delivery, credits taken back)."""

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID, uuid4

from services.common.contracts import JobSpec, ReservationRejected

ISSUED, HOLDS, REVENUE, EXPIRED = "platform:issued", "platform:holds", "platform:revenue", "platform:expired"
# Credits a processor took back: refunded, held for an open dispute, or lost to one.
RECLAIMED, DISPUTES, CHARGEBACKS = "platform:reclaimed", "platform:disputes", "platform:chargebacks"


def tenant_account(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


@dataclass(kw_only=True)
class Account:
    tenant_id: str
    posted: int = 0
    pending: int = 0
    retry_tokens: int = 0
    report_policy: str = "refund"
    owed: int = 0  # credits taken back beyond the balance (a refund, a lost dispute)

    @property
    def available(self) -> int:
        return self.posted - self.pending


@dataclass(kw_only=True)
class Transfer:
    id: UUID
    job_id: UUID
    tenant_id: str
    amount: int
    unit_price: int
    images: int
    tokens_held: int
    tier: str
    pricebook_version: str
    max_provider_spend: int
    timeout_at: datetime
    state: str = "pending"
    charged: int | None = None
    delivered: int | None = None
    settled_at: datetime | None = None
    api_key_id: UUID | None = None  # the key whose spend the hold counts in, on `spent_on`
    spent_on: date | None = None
    # A video job's: credits per delivered second, the seconds one clip was asked for (the
    # most a clip is charged for; unit_price is a clip of that length), and once settled the
    # seconds charged. None for image jobs.
    second_price: int | None = None
    clip_seconds: int | None = None
    delivered_seconds: int | None = None

    @property
    def priced_by_the_second(self) -> bool:
        return self.second_price is not None


@dataclass(kw_only=True)
class Grant:
    id: UUID
    tenant_id: str
    source: str
    amount: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime
    rollover_days: int | None = None
    payment_id: str | None = None

    def order_key(self) -> tuple[bool, datetime, datetime, str]:
        """Earliest-expiring first; grants that never expire last; then oldest first."""
        return (self.expires_at is None, self.expires_at or self.created_at, self.created_at, str(self.id))


@dataclass(frozen=True, kw_only=True)
class Entry:
    tenant_id: str
    kind: str
    amount: int
    debit_account: str
    credit_account: str
    transfer_id: UUID | None = None
    grant_id: UUID | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class CreditGrant:
    """Credits given to a tenant: how many, where they come from (`admin`, `payment`, `refund`,
    `rollover`...), why, and the terms they carry: when they expire, how long their unused
    credits roll over, and the payment that bought them."""

    tenant_id: str
    amount: int
    source: str
    reason: str
    expires_at: datetime | None = None
    rollover_days: int | None = None
    payment_id: str | None = None

    def issued(self, now: datetime) -> Grant:
        """The grant's row, made `now`, with all its credits remaining."""
        return Grant(id=uuid4(), tenant_id=self.tenant_id, source=self.source, amount=self.amount, remaining=self.amount, expires_at=self.expires_at, created_at=now,
                     rollover_days=self.rollover_days, payment_id=self.payment_id)


@dataclass(frozen=True)
class DeliveryRecord:
    """What a job delivered when it ended: its images, a video job's clips by their lengths
    (`clip_ms`), and how it ended."""

    images: int = 0
    clip_ms: list[int] | None = None
    outcome: str = "charged"


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """Why a reservation is refused, and the credits it needed and found."""

    code: str
    reason: str
    required: int = 0
    available: int = 0

    def of(self, job: JobSpec) -> ReservationRejected:
        return ReservationRejected(job_id=job.job_id, tenant_id=job.tenant_id, reason_code=self.code,
                                   reason=self.reason, required=self.required, available=self.available)


@dataclass(frozen=True, kw_only=True)
class ProviderCost:
    """What one attempt of a job spent at one provider."""

    job_id: UUID
    attempt: int
    provider: str
    cost_micro_usd: int


@dataclass(frozen=True, kw_only=True)
class Takeback:
    """Credits a payment processor takes back from a tenant (a refund, a dispute), or a debt it
    no longer stands behind: how many, why (`cause`), and the payment they came with."""

    tenant_id: str
    amount: int
    cause: str
    payment_id: str | None


@dataclass(frozen=True, kw_only=True)
class DisputeHold:
    """What an open dispute of a payment took from a tenant: `held` from its balance, `owed`
    beyond it."""

    tenant_id: str
    held: int
    owed: int
    payment_id: str | None


@dataclass(kw_only=True)
class TrainingHold:
    job_id: UUID
    tenant_id: str
    subject_id: UUID
    photo_set_sha256: str
    amount: int
    state: str = "pending"
    charged: int | None = None
    identity_id: UUID | None = None
    settled_at: datetime | None = None


@dataclass(kw_only=True)
class Trainings:
    """What a batch knows of training lines (loaded, the jobs' locked) and what it changed."""

    holds: dict[UUID, TrainingHold] = field(default_factory=dict)  # by job id
    trained: set[tuple[str, UUID, str]] = field(default_factory=set)  # tenant, subject, photo set
    charged: set[tuple[str, UUID, UUID]] = field(default_factory=set)  # tenant, subject, identity
    new_holds: list[TrainingHold] = field(default_factory=list)
    changed_holds: list[TrainingHold] = field(default_factory=list)
    new_trained: list[tuple[str, UUID, str, UUID, datetime]] = field(default_factory=list)
