"""What a job costs, without I/O: its price in a version of the price book (an image by
template × tier, a clip by the second at its resolution), and what its settlement charges
and releases of the credits held for it."""

from dataclasses import dataclass

from services.common.contracts import JobSpec, VideoSpec
from services.ledger.pricebook import PriceBookVersion
from services.ledger.records import Transfer


@dataclass(frozen=True, kw_only=True)
class Settlement:
    charged: int
    released: int
    tokens_used: int
    tokens_returned: int
    seconds: int | None = None  # a video job's delivered seconds charged (tokens aside)


def settle_amounts(transfer: Transfer, delivered: int, *, clip_ms: list[int] | None = None) -> Settlement:
    """Charge only what was delivered, retry tokens first, never more than was held. A video
    job's clips (`clip_ms`, each delivered clip's length) are charged by the second."""
    if transfer.priced_by_the_second:
        return _settle_seconds(transfer, clip_ms or [])
    delivered = min(max(delivered, 0), transfer.images)
    tokens_used = min(delivered, transfer.tokens_held)
    charged = min((delivered - tokens_used) * transfer.unit_price, transfer.amount)
    return Settlement(charged=charged, released=transfer.amount - charged, tokens_used=tokens_used, tokens_returned=transfer.tokens_held - tokens_used)


def billed_clip_seconds(duration_ms: int, asked_seconds: int) -> int:
    """What one delivered clip is charged for: its length rounded up to whole seconds, never
    more than the seconds asked (a longer clip costs no more)."""
    return min(-(-max(duration_ms, 0) // 1000), asked_seconds)


def _settle_seconds(transfer: Transfer, clip_ms: list[int]) -> Settlement:
    """A retry token pays for one whole clip (the longest left); the other clips' seconds are
    charged at the price per second held."""
    assert transfer.second_price is not None and transfer.clip_seconds is not None
    seconds = sorted((billed_clip_seconds(ms, transfer.clip_seconds) for ms in clip_ms[:transfer.images]),
                     reverse=True)
    tokens_used = min(len(seconds), transfer.tokens_held)
    charged_seconds = sum(seconds[tokens_used:])
    charged = min(charged_seconds * transfer.second_price, transfer.amount)
    assert charged <= transfer.amount
    return Settlement(charged=charged, released=transfer.amount - charged, tokens_used=tokens_used, tokens_returned=transfer.tokens_held - tokens_used,
                      seconds=charged_seconds)


@dataclass(frozen=True, kw_only=True)
class JobPrice:
    """What one delivered output of a job costs (a clip: at the seconds asked), the provider
    spend the job may reach, and a video job's price per second and seconds per clip."""

    unit: int
    spend_cap: int
    second_price: int | None = None
    clip_seconds: int | None = None


@dataclass(frozen=True)
class Unpriced:
    """Why the price book has no price for a job: the rejection's code and its reason."""

    code: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class PriceAsk:
    """What a job asks to be priced: outputs of a template in a tier, or clips (`video`)."""

    template: str
    tier: str
    images: int
    video: VideoSpec | None = None
    bulk: bool = False  # at bulk priority (a batch's line): the price book's batch discount

    @classmethod
    def of(cls, job: JobSpec) -> "PriceAsk":
        return cls(template=job.template, tier=job.tier, images=job.images, video=job.video, bulk=job.job_priority == "bulk")


def price_of(prices: PriceBookVersion, order: PriceAsk) -> JobPrice | Unpriced:
    """A job's price in the book's version `prices`: a clip (`video`) by the second at its
    resolution, an image by template × tier."""
    tier, video = order.tier, order.video
    if video is not None:
        per_second = prices.second_price(tier, video.resolution)
        if per_second is None:
            return Unpriced("unknown_tier", f"no price per second for {video.resolution} clips in tier {tier!r}")
        per_second = prices.bulk_price(per_second) if order.bulk else per_second
        seconds = video.billed_seconds()
        return JobPrice(unit=per_second * seconds, spend_cap=prices.video_spend_cap(tier, order.images, seconds=seconds), second_price=per_second, clip_seconds=seconds)
    unit = prices.unit_price(order.template, tier)
    if unit is None:
        code = "unknown_tier" if order.template in prices.prices else "unknown_template"
        return Unpriced(code, f"no price for template {order.template!r} in tier {tier!r}")
    return JobPrice(unit=prices.bulk_price(unit) if order.bulk else unit, spend_cap=prices.spend_cap(tier, order.images))
