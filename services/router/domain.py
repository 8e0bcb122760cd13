"""Router rules, without I/O: what an attempt asks the engine for, where its candidates are
stored, when a job can get no more candidates, and what the scorer's verdicts teach."""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.contracts import DEADLINE_EXCEEDED, CandidateScore, CandidatesGenerated, JobSpec, ProviderCall
from services.common.quality.dimensions import DIMENSIONS
from services.router.health import CandidateVerdict
from services.router.providers.registry import Registry
from services.router.routing_types import CallRecord, RouteRequest

COST_CAP_REACHED = "cost_cap_reached"
MAX_ATTEMPTS_REACHED = "max_attempts_reached"
CANCELED = "canceled"
# Engine outcomes that are not ProviderCall outcomes of their own.
_CALL_OUTCOMES = {"ok": "ok", "timeout": "timeout", "rate_limited": "rate_limited"}


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmittedJob:
    """What the router keeps of an admitted job."""

    spec: JobSpec
    budget_micro_usd: int  # 0: no cap
    spent_micro_usd: int = 0
    next_index: int = 0
    final: bool = False
    stop_reason: str | None = None
    traceparent: str | None = None  # of the event that admitted it

    @property
    def remaining_micro_usd(self) -> int | None:
        return max(0, self.budget_micro_usd - self.spent_micro_usd) if self.budget_micro_usd else None


def time_left_s(spec: JobSpec, now: datetime) -> float | None:
    """Seconds until the job's deadline (negative once past); None when it has none."""
    if spec.deadline_s is None:
        return None
    return (spec.submitted_at + timedelta(seconds=spec.deadline_s) - now).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStart:
    """An attempt as a router starts it: its number and the images it still needs, the size they
    are made at unless the job names one, when it starts, the prompt in clear, and whether this
    is the attempt's first run."""

    number: int
    images_needed: int
    width: int
    height: int
    now: datetime | None = None
    prompt: str | None = None
    first_run: bool = False


def route_request(job: AdmittedJob, start: AttemptStart) -> RouteRequest:
    """Attempt 1 generates the client's N when the client chose it; every other attempt is
    sized from the pass-rate estimate. Indices continue where the last attempt stopped.
    The time left until the job's deadline (as of `now`) bounds the engine's calls and
    spreads its target over the rounds that fit. The job's size, when it asked for one,
    overrides the default `width`×`height`; a pinned
    model (and version) limits the providers to those that serve it, on every attempt.
    A reference photo is for the scorer only: adapters take no image input yet, so it does
    not narrow the providers. The start's `prompt` is the spec's sealed prompt opened (None: the
    clear text of a job submitted before prompts were sealed). On the attempt's `first_run` no
    earlier run can have left a remote job to resume, so none is looked for."""
    spec = job.spec
    attempt, width, height, now, prompt = start.number, start.width, start.height, start.now, start.prompt
    fixed = spec.candidates if spec.candidates_fixed and attempt == 1 else None
    if spec.video is not None:
        width, height = spec.video.size()  # a clip's stills are made at the clip's size
    return RouteRequest(
        job_id=str(spec.job_id), tenant_id=spec.tenant_id, tier=spec.tier, template=spec.template,
        prompt=prompt if prompt is not None else spec.prompt.clear or "", seed=spec.seed,
        images_needed=start.images_needed,
        width=spec.width or width if spec.video is None else width,
        height=spec.height or height if spec.video is None else height, video=spec.video,
        attempt=attempt, start_index=job.next_index, model=spec.model, model_version=spec.model_version,
        cost_cap_micro_usd=job.remaining_micro_usd, candidates=fixed,
        time_left_s=time_left_s(spec, now) if now is not None else None, resumable=not start.first_run,
        priority=spec.priority, job_priority=spec.job_priority,
    )


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a job has left after an attempt: its budget (None: no cap) against what its next
    candidate costs at the cheapest capable provider (None: none is capable), and its time
    (None: no deadline)."""

    remaining_micro_usd: int | None
    cheapest_price_micro_usd: int | None
    time_left_s: float | None = None


def stop_reason(attempt: int, max_attempts: int, *, outlook: Outlook) -> str | None:
    """Why the router will generate nothing more after this attempt, or None if it could."""
    if outlook.time_left_s is not None and outlook.time_left_s <= 0:
        return DEADLINE_EXCEEDED
    if attempt >= max_attempts:
        return MAX_ATTEMPTS_REACHED
    remaining, cheapest = outlook.remaining_micro_usd, outlook.cheapest_price_micro_usd
    if remaining is not None and (cheapest is None or remaining < cheapest):
        return COST_CAP_REACHED
    return None


def provider_calls(calls: Iterable[CallRecord], registry: Registry, *, route: RouteRequest) -> list[ProviderCall]:
    return [_provider_call(call, registry, route=route) for call in calls]


def _provider_call(call: CallRecord, registry: Registry, *, route: RouteRequest) -> ProviderCall:
    """The call as published, with the model it was made with: the job's pin where it has one."""
    config = registry.providers[call.provider]
    model = config.model_for(route.model, route.model_version) or config.models[0]
    return ProviderCall(
        provider=call.provider, model=model.name, model_version=model.version,
        outcome=_CALL_OUTCOMES.get(call.outcome, "error"), candidates=call.count if call.outcome == "ok" else 0,
        expected_cost_micro_usd=call.expected_cost_micro_usd, cost_micro_usd=call.actual_cost_micro_usd,
        expected_latency_ms=round(call.expected_latency_s * 1000), latency_ms=round(call.latency_s * 1000),
        detail=(call.error or "")[:500], stage=call.stage, stage_index=call.stage_index,
        refused_outputs=call.count if call.outcome == "bad_output" else 0,
    )


def verdicts_by_provider(scores: Iterable[CandidateScore],
                         attempt: int | None = None) -> dict[str, tuple[float, float]]:
    """(passed, failed) per provider, of the scores of `attempt` (all when None).

    A candidate left without a verdict (the scorer, measuring the tiers after the first best
    first, stopped once the job had enough better ones) passed Tier 1 at least, so it counts
    as the provider's judged candidates that passed Tier 1 did: passed in the share of them
    that passed. Left out instead, the rejections of the cheap tier would weigh more than
    they do, and the pass rate learnt would fall below the provider's."""
    passed: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    past_first: Counter[str] = Counter()
    unjudged: Counter[str] = Counter()
    for score in scores:
        if not score.provider or (attempt is not None and score.attempt != attempt):
            continue
        if not score.judged:
            unjudged[score.provider] += 1
            continue
        (passed if score.passed else failed)[score.provider] += 1
        past_first[score.provider] += not any(_first_tier(name) for name in score.failed)
    counted = {}
    for provider in passed.keys() | failed.keys():
        share = passed[provider] / past_first[provider] if past_first[provider] else 0.0
        guessed = unjudged[provider] if past_first[provider] else 0
        counted[provider] = (passed[provider] + guessed * share, failed[provider] + guessed * (1 - share))
    return counted


def _first_tier(dimension: str) -> bool:
    """Whether a failed check (a dimension, or a forbidden condition on one: 'forbid:faces>=1')
    is of Tier 1; one this process does not know (a plugin's) is not."""
    parts = re.split(r"[<>=#]+", dimension.removeprefix("forbid:"))  # 'forbid:0.2<=nsfw<=0.5'
    return any((known := DIMENSIONS.get(part)) is not None and known.tier == 1 for part in parts)


def quality_verdicts(scores: Iterable[CandidateScore], attempt: int) -> dict[str, list[CandidateVerdict]]:
    """The verdicts of `attempt`, per provider, with the dimensions that failed, for the quality breakers."""
    verdicts: dict[str, list[CandidateVerdict]] = {}
    for score in scores:
        if score.provider and score.judged and score.attempt == attempt:
            verdicts.setdefault(score.provider, []).append(CandidateVerdict(score.passed, tuple(score.failed)))
    return verdicts


def nothing_more(job: AdmittedJob, attempt: int, *, reason: str) -> CandidatesGenerated:
    """The answer to a rework request for a job the router has already said it is done with."""
    spec = job.spec
    return CandidatesGenerated(job_id=spec.job_id, tenant_id=spec.tenant_id, attempt=attempt, images=spec.images,
                               started_at=spec.submitted_at, candidates=[], cost_micro_usd=0,
                               spent_micro_usd=job.spent_micro_usd, budget_micro_usd=job.budget_micro_usd,
                               final=True, stop_reason=reason, job=spec)
