"""Ledger rules, without I/O: what a job costs and how a reservation settles."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Settlement:
    charged: int
    released: int


def job_price(unit_prices: dict[str, int], template: str, images: int) -> int | None:
    """Users pay by result: credits per delivered image of the template; None if unpriced."""
    unit = unit_prices.get(template)
    return None if unit is None else unit * images


def settle(amount: int, unit_price: int, images: int, delivered: int) -> Settlement:
    """Charge only what was delivered, never more than was reserved; release the rest."""
    charged = min(max(delivered, 0), images) * unit_price
    charged = min(charged, amount)
    return Settlement(charged=charged, released=amount - charged)


def insufficient_credits_reason(required: int, available: int) -> str:
    return f"the job costs {required} credits but only {available} are available"
