"""Every account's balances from the ledger's events alone, without I/O: what `genline
replay ledger` compares with the live accounts."""

from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass
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
