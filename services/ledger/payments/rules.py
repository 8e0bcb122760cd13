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


def share_of_credits(credits: int, paid_minor: int, taken_minor: int) -> int:
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


def pauses_after(failures: int, limit: int) -> bool:
    """An auto top-up rule stops after `limit` failed charges in a row."""
    return failures >= limit
