"""Alerts a tenant receives before its money runs out, each raised once per crossing:
`account.balance_low` (available credits below the tenant's threshold), `account.grant_expiring`
(a grant with credits left expires within the tenant's notice), `account.key_cap_reached` (an
API key's day or month reached its spend cap, or its cap refused a hold) and
`billing.topup_failed` (raised by whoever saw the top-up fail).

A round, on every replica, clears the balance alerts whose balance is back and raises every
crossing not raised yet; the alerts table allows one open alert per tenant, kind and subject,
so replicas that see the same crossing raise it once. Each raised alert is an AccountAlerted
in the same transaction, which delivery sends to the tenant's endpoints as a Standard Webhook.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.contracts import AccountAlerted
from services.common.db import Conn
from services.ledger.store import alerts as alert_store
from services.ledger.store.alerts import Crossing

# Days before a grant expires that its tenant is told, until the tenant sets its own.
DEFAULT_GRANT_NOTICE_DAYS = 7


@dataclass(frozen=True, kw_only=True)
class FailedTopUp:
    """A top-up that failed, as whoever saw it fail tells it: the tenant, the payment, why,
    and what it was for."""

    tenant_id: str
    payment_id: str
    reason: str
    amount_minor: int | None = None
    currency: str | None = None

    def crossing(self) -> Crossing:
        details = {"payment_id": self.payment_id, "reason": self.reason, "amount_minor": self.amount_minor,
                   "currency": self.currency}
        return Crossing(tenant_id=self.tenant_id, alert="billing.topup_failed", subject=self.payment_id, details=details)


def alerted(row: dict[str, Any]) -> AccountAlerted:
    return AccountAlerted(tenant_id=row["tenant_id"], alert_id=row["id"], alert=row["alert"],
                          raised_at=row["raised_at"], details=row["details"])


async def raise_due(conn: Conn, now: datetime | None = None) -> list[AccountAlerted]:
    """Every crossing not raised yet, raised (call in a transaction; emit what it returns)."""
    rows = await alert_store.raise_due_alerts(conn, now or datetime.now(UTC), notice_days=DEFAULT_GRANT_NOTICE_DAYS)
    return [alerted(row) for row in rows]


async def raise_once(conn: Conn, crossing: Crossing, *, now: datetime | None = None) -> AccountAlerted | None:
    """An alert of a crossing the caller saw (its `subject` names it: a failed payment's id);
    None when it was raised before."""
    row = await alert_store.raise_alert(conn, crossing, now=now or datetime.now(UTC))
    return alerted(row) if row else None
