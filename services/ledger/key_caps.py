"""Spend caps per API key, without I/O: what a key has spent in the day and the month a hold
counts in, and whether one more hold stays within the key's caps.

A key's spend is what its open reservations hold plus what its settled ones charged. A hold
adds its amount to the key's day and month; a settlement gives back what it released. The
book reads the spend once per batch (unlocked) and writes the batch's changes as deltas with
the cap in force; the database's CHECK refuses a sum beyond the cap, so two holds that race
on one key roll one batch back, and it is decided again on what the other committed.
"""

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from services.common.contracts import KeySpendCaps

PERIODS = ("day", "month")
PERIOD_WORDS = {"day": ("daily", "today"), "month": ("monthly", "this month")}

# A row of key_spend: the key, its period and the period's first day.
SpendRow = tuple[UUID, str, date]


def period_start(period: str, day: date) -> date:
    return day if period == "day" else day.replace(day=1)


def cap_of(caps: KeySpendCaps | None, period: str) -> int | None:
    if caps is None:
        return None
    return caps.daily if period == "day" else caps.monthly


@dataclass(frozen=True, kw_only=True)
class CapReached:
    """The cap a hold would pass: which one, how much is spent, what the hold asks."""

    api_key_id: UUID
    period: str
    cap: int
    spent: int
    amount: int

    @property
    def reason(self) -> str:
        word, when = PERIOD_WORDS[self.period]
        return (f"API key {self.api_key_id} has a {word} spend cap of {self.cap} credits: {self.spent} spent {when},"
                f" and the job costs {self.amount}")


@dataclass(frozen=True, kw_only=True)
class KeyHold:
    """Credits a job's hold counts in (or a settlement gives back to) its API key's spend: the
    key's tenant, the key, the day the hold was made, the credits, and the key's caps."""

    tenant_id: str
    api_key_id: UUID
    day: date
    amount: int
    caps: KeySpendCaps | None = None

    def row(self, period: str) -> SpendRow:
        return self.api_key_id, period, period_start(period, self.day)


@dataclass(kw_only=True)
class KeySpend:
    """The spend rows a batch read, and what the batch adds to each (with the cap in force at
    its last hold), written back as deltas."""

    loaded: dict[SpendRow, int] = field(default_factory=dict)
    deltas: dict[SpendRow, int] = field(default_factory=dict)
    caps: dict[SpendRow, int | None] = field(default_factory=dict)
    tenants: dict[UUID, str] = field(default_factory=dict)
    refused: set[SpendRow] = field(default_factory=set)

    def spent(self, row: SpendRow) -> int:
        return self.loaded.get(row, 0) + self.deltas.get(row, 0)

    def beyond_cap(self, hold: KeyHold) -> CapReached | None:
        """The first of the key's caps that the hold's amount more would pass, or None."""
        for period in PERIODS:
            cap = cap_of(hold.caps, period)
            spent = self.spent(hold.row(period))
            if cap is not None and spent + hold.amount > cap:
                return CapReached(api_key_id=hold.api_key_id, period=period, cap=cap, spent=spent, amount=hold.amount)
        return None

    def hold(self, hold: KeyHold) -> None:
        self.tenants[hold.api_key_id] = hold.tenant_id
        for period in PERIODS:
            row = hold.row(period)
            self.deltas[row] = self.deltas.get(row, 0) + hold.amount
            self.caps[row] = cap_of(hold.caps, period)

    def refuse(self, hold: KeyHold, reached: CapReached) -> None:
        """Mark the period whose cap refused a hold (its alert is due)."""
        self.tenants[hold.api_key_id] = hold.tenant_id
        row = hold.row(reached.period)
        self.refused.add(row)
        self.caps.setdefault(row, cap_of(hold.caps, reached.period))

    def give_back(self, released: KeyHold) -> None:
        self.tenants[released.api_key_id] = released.tenant_id
        for period in PERIODS:
            row = released.row(period)
            self.deltas[row] = self.deltas.get(row, 0) - released.amount

    def changes(self) -> list[tuple[UUID, str, date, str, int, int | None, bool]]:
        """(key, period, start, tenant, Δspent, cap, refused) of every row the batch changed, in
        key order, so concurrent batches lock rows in the same order."""
        rows = sorted({row for row, delta in self.deltas.items() if delta} | self.refused, key=str)
        return [(key, period, start, self.tenants[key], self.deltas.get((key, period, start), 0),
                 self.caps.get((key, period, start)), (key, period, start) in self.refused)
                for key, period, start in rows]
