"""The ledger's records, without I/O: accounts, two-phase transfers, grants and the
double-entry journal's lines, and the names of the platform's accounts they move credits
between."""

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

ISSUED, HOLDS, REVENUE, EXPIRED = "platform:issued", "platform:holds", "platform:revenue", "platform:expired"
# Credits a processor took back: refunded, held for an open dispute, or lost to one.
RECLAIMED, DISPUTES, CHARGEBACKS = "platform:reclaimed", "platform:disputes", "platform:chargebacks"


def tenant_account(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


@dataclass
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


@dataclass
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


@dataclass
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


@dataclass(frozen=True)
class Entry:
    tenant_id: str
    kind: str
    amount: int
    debit_account: str
    credit_account: str
    transfer_id: UUID | None = None
    grant_id: UUID | None = None
    reason: str | None = None
