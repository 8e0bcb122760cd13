"""What a tenant asks of billing (a checkout, an auto top-up rule), and the arithmetic of
money taken back and of auto top-up, without I/O."""

from typing import Literal

from pydantic import BaseModel, Field

# A dispute in one of these is over in the tenant's favour (an inquiry closed without a
# chargeback counts as won); `lost` is over against it; any other status is still open.
DISPUTE_WON = frozenset({"won", "warning_closed"})
DISPUTE_LOST = frozenset({"lost"})


class CheckoutAsked(BaseModel):
    pack: str = Field(max_length=64)
    save_card: bool = False
    success_url: str = Field(max_length=2000)
    cancel_url: str = Field(max_length=2000)


class AutoTopUpRule(BaseModel):
    below: int = Field(gt=0, le=10**12)
    pack: str = Field(max_length=64)
    max_per_month: int = Field(gt=0, le=1000)
    enabled: bool = True


# Where a checkout's state may go from each state: forward only, whatever order the
# processor's events arrive in. Paid and failed are final; an expired checkout is recorded
# paid only if the processor says its money came all the same.
CHECKOUT_MOVES: dict[str, frozenset[str]] = {
    "open": frozenset({"awaiting_payment", "paid", "failed", "expired"}),
    "awaiting_payment": frozenset({"paid", "failed"}),
    "expired": frozenset({"paid"}),
    "paid": frozenset(),
    "failed": frozenset(),
}
# The same for an auto top-up's off-session charge: succeeded and failed are final.
ATTEMPT_MOVES: dict[str, frozenset[str]] = {
    "requested": frozenset({"processing", "succeeded", "failed"}),
    "processing": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
}


def checkout_after(state: str, told: str) -> str:
    """A checkout's state once an event says `told`: the new state if it lies ahead, else as it was."""
    return told if told in CHECKOUT_MOVES[state] else state


def checkout_states_before(told: str) -> list[str]:
    """The states a checkout may move to `told` from."""
    return sorted(state for state, ahead in CHECKOUT_MOVES.items() if told in ahead)


def attempt_after(state: str, told: str) -> str:
    return told if told in ATTEMPT_MOVES[state] else state


def attempt_states_before(told: str) -> list[str]:
    return sorted(state for state, ahead in ATTEMPT_MOVES.items() if told in ahead)


def share_of_credits(credits: int, paid_minor: int, *, taken_minor: int) -> int:
    """The credits a payment bought in proportion to the money taken back from it (rounded
    down, never more than it bought)."""
    if paid_minor <= 0:
        return credits if taken_minor > 0 else 0
    return min(credits, credits * max(taken_minor, 0) // paid_minor)


def dispute_stage(status: str) -> Literal["open", "won", "lost"]:
    if status in DISPUTE_WON:
        return "won"
    if status in DISPUTE_LOST:
        return "lost"
    return "open"
