"""How an order carries its subject, chosen by expected cost per passing image (DESIGN.md §6,
§13), without I/O.

Each way is priced as the engine would route it: the cheapest capable provider's price per
image over its pass rate for that way (`planning.identity_key`: the rate the scorer's verdicts
teach for the template with the identity among what must pass). Training is one more cost,
spread over the order's candidates: a training of T for an order of N candidates adds T / N to
each, so a LoRA pays for itself on large orders and not on small ones. An identity already
trained, or in training for another order, costs nothing more. A job that names its way
(`identity: lora | reference`) gets that way or none.
"""

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Mode = Literal["lora", "reference"]


@dataclass(frozen=True, slots=True)
class Priced:
    """What one image costs at the way's best provider, and how often one passes."""

    price_micro_usd: int
    pass_rate: float


def per_passing_image(priced: Priced, training_micro_usd: int, *, candidates: int) -> float:
    """Expected cost per passing image, a training's cost spread over the order's candidates."""
    per_candidate = priced.price_micro_usd + training_micro_usd / max(1, candidates)
    return per_candidate / max(priced.pass_rate, 1e-6)


@dataclass(frozen=True, slots=True, kw_only=True)
class Way:
    """One way to carry the subject: by reference on `provider`'s `model`, or by LoRA: an
    identity reused (`identity_id`) or trained by `provider`'s trainer `model` (`trains`)."""

    mode: Mode
    cost_per_passing_image: float
    provider: str = ""
    model: str = ""
    identity_id: UUID | None = None
    trains: bool = False
    training_micro_usd: int = 0
    # An identity reused that is trained already: its weights' hash, which receipts name.
    weights_sha256: str | None = None


def cheapest_way(ways: list[Way], forced: str = "auto") -> Way | None:
    """The way of least expected cost per passing image (an identity reused before a training
    of the same cost), among those the job allows; None when it allows none."""
    allowed = [way for way in ways if forced in ("auto", way.mode)]
    if not allowed:
        return None
    return min(allowed, key=lambda way: (round(way.cost_per_passing_image, 6), way.trains, way.mode, way.provider))


def why_no_way(forced: str, tried: list[str]) -> str:
    """The reason an order of a subject cannot be generated at all."""
    asked = {"auto": "by LoRA or by reference", "lora": "by LoRA (identity: lora)",
             "reference": "by reference (identity: reference)"}.get(forced, forced)
    found = "; ".join(tried) if tried else "no provider declares capabilities.identity"
    return f"no provider can carry the subject {asked}: {found}"
