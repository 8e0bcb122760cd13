"""Every account's balances, and every API key's spend, from the ledger's events alone,
without I/O: what `genline replay ledger` compares with the live accounts and key_spend."""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from services.common.contracts import (
    CreditsExpired,
    CreditsGranted,
    CreditsReclaimed,
    CreditsRefunded,
    CreditsReserved,
    EvaluationCharged,
    Event,
    ReservationSettled,
    RetryTokenIssued,
    TrainingSettled,
)
from services.ledger.key_caps import PERIODS, SpendRow, period_start


@dataclass(kw_only=True)
class ReplayedAccount:
    posted: int = 0
    pending: int = 0
    retry_tokens: int = 0
    owed: int = 0


BALANCE_EVENTS = (CreditsGranted, CreditsRefunded, CreditsExpired, CreditsReserved, ReservationSettled, RetryTokenIssued,
                  CreditsReclaimed, EvaluationCharged, TrainingSettled)


def replay_balances(events: Iterable[Event]) -> dict[str, ReplayedAccount]:
    """Every account's balances from the ledger's events alone (each event once). An event that
    moves no balance (a reservation refused to a tenant that never held credits, an audit
    record) opens no account, as it opens none in the live table."""
    accounts: dict[str, ReplayedAccount] = {}
    for event in events:
        if not isinstance(event, BALANCE_EVENTS):
            continue
        account = accounts.setdefault(event.tenant_id, ReplayedAccount())
        match event:
            case CreditsGranted() | CreditsRefunded():
                account.posted += event.amount
            case CreditsExpired() | EvaluationCharged():
                account.posted -= event.amount
            case CreditsReserved():
                account.pending += event.amount + event.training_credits  # a job's training line is held with it
                account.retry_tokens -= event.tokens_held
            case ReservationSettled():
                account.pending -= event.reserved
                account.posted -= event.charged
                account.retry_tokens += event.tokens_returned
            case TrainingSettled():
                account.pending -= event.held
                account.posted -= event.charged
            case RetryTokenIssued():
                account.retry_tokens += 1
            case CreditsReclaimed():
                account.posted -= event.amount
                account.owed += event.owed_change
    return accounts


def replay_key_spend(events: Iterable[Event]) -> dict[SpendRow, int]:
    """Each API key's spend per period (key, "day" or "month", the period's first day), as
    key_spend keeps it: a hold adds its amount on the day it counts on, and its settlement gives
    back what it released there. A hold told before its day was (`spent_on`) counts on the day
    its job was submitted."""
    spent: dict[SpendRow, int] = {}
    holds: dict[UUID, SpendRow] = {}  # transfer → (key, "day", day)
    for event in events:
        match event:
            case CreditsReserved() if event.job.api_key_id is not None and event.amount:
                day = event.spent_on or event.job.submitted_at.date()
                holds[event.transfer_id] = (event.job.api_key_id, "day", day)
                _add(spent, holds[event.transfer_id], amount=event.amount)
            case ReservationSettled() if event.transfer_id in holds and event.released:
                _add(spent, holds[event.transfer_id], amount=-event.released)
    return spent


def _add(spent: dict[SpendRow, int], hold: SpendRow, *, amount: int) -> None:
    key, _, day = hold
    for period in PERIODS:
        row = (key, period, period_start(period, day))
        spent[row] = spent.get(row, 0) + amount
