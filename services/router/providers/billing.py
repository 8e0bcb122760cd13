"""What a hosted job costs, and how that is spread over the images it gave.

The provider's own figure where it states one; else the registry's price: a clip's by its
length, an image's by its size, compute seconds and steps, plus what token usage bills.
"""

from dataclasses import dataclass

from services.router.providers.registry import ProviderConfig
from services.router.providers.remote_calls import RemoteCall, RemoteOutput


@dataclass(frozen=True, slots=True, kw_only=True)
class BilledJob:
    """A hosted job as it is billed: its call, what it gave back, the images it bills, and how
    long it took (its compute time where the provider states none)."""

    call: RemoteCall
    output: RemoteOutput
    count: int
    latency_s: float = 0.0


def billed_micro_usd(config: ProviderConfig, job: BilledJob) -> int:
    """What the provider bills for the job: what it says, else its price for `count` images."""
    call, output, count = job.call, job.output, job.count
    if output.cost_micro_usd is not None:
        return output.cost_micro_usd
    if call.clip_seconds is not None and call.request.video is not None:
        return config.clip_price_micro_usd(call.request.video, call.pin) * count
    size = call.size or (call.request.width, call.request.height)
    compute_s = output.compute_s if output.compute_s is not None else job.latency_s
    per_image = config.price.price_micro_usd(size, compute_s / max(1, count), steps=call.steps)
    return per_image * count + (output.usage_micro_usd or 0)


def shares(total: int, count: int) -> list[int]:
    """`total` in `count` whole shares that add up to it."""
    if count == 0:
        return []
    base, extra = divmod(total, count)
    return [base + (1 if n < extra else 0) for n in range(count)]
