"""An attempt's batches: its indices cut into chunks a provider takes in one call, and the remote
jobs the journal holds for it (a router died or stopped while they ran) as batches of their own,
resumed on their provider first; then what the batches' calls add up to."""

from collections.abc import Collection
from dataclasses import dataclass, field

from services.common.turns import JOB_RANK, Turn, plan_share
from services.router.capacity import CostBudget
from services.router.providers.journal import RemoteJob, RemoteJobJournal
from services.router.routing_types import (
    AllProvidersFailed,
    AttemptResult,
    CallRecord,
    CostCapReached,
    RoutedImage,
    RoutePlan,
    RouteRequest,
    RoutingError,
    with_calls,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRun:
    """An attempt under way: what it asks, its plan, the cost budget its calls share, and the
    clock time by which its calls must be done (None: no deadline)."""

    request: RouteRequest
    plan: RoutePlan
    budget: CostBudget
    deadline: float | None

    def turn(self, batch: "AttemptChunk") -> Turn:
        """The batch's turn while its calls wait for a slot: its tenant's, with the plan's share,
        the job's place among the tenant's own jobs, and the images its next call asks for."""
        request = self.request
        return Turn(tenant=request.tenant_id, share=plan_share(request.priority), rank=JOB_RANK.get(request.job_priority, 0),
                    cost=max(1, min(len(batch.pending), self.plan.primary.max_batch)))


@dataclass(kw_only=True)
class AttemptChunk:
    """The indices one chunk of the attempt still has to get, and what it has got so far."""

    pending: list[int]
    images: list[RoutedImage] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    # The provider of a remote job of these indices left running by an earlier run of the attempt.
    resume_on: str | None = None

    def add(self, call: CallRecord, images: list[RoutedImage]) -> None:
        """A call made for the batch, and the images it returned: their indices are no longer pending."""
        self.images.extend(images)
        returned = {routed.image.index for routed in images}
        self.pending = [i for i in self.pending if i not in returned]
        self.calls.append(call)


async def resumed_batches(journal: RemoteJobJournal | None, request: RouteRequest,
                          *, providers: Collection[str]) -> list[AttemptChunk]:
    """One batch per remote job of this attempt and stage still running or done at its provider."""
    if journal is None or not request.resumable:
        return []
    jobs = await journal.unfinished(request.job_id, request.attempt, capability=request.capability)
    batches: list[AttemptChunk] = []
    taken: set[int] = set()
    for job in sorted(jobs, key=lambda j: j.key.start_index):
        indices = list(range(job.key.start_index, job.key.start_index + job.key.count))
        if belongs(job, request) and job.key.provider in providers and not taken & set(indices):
            batches.append(AttemptChunk(pending=indices, resume_on=job.key.provider))
            taken |= set(indices)
    return batches


def split(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i: i + size] for i in range(0, len(indices), max(1, size))]


def belongs(job: RemoteJob, request: RouteRequest) -> bool:
    """Whether a journal's job is one of this request's: a later stage asks per candidate."""
    if request.capability == "generate":
        return job.key.start_index >= request.start_index
    return job.key.start_index == request.start_index


def attempt_result(run: AttemptRun, batches: list[AttemptChunk], *, latency_s: float) -> AttemptResult:
    """The attempt's images in index order with every call made; raised as the reason when
    no call generated anything."""
    request, plan, budget = run.request, run.plan, run.budget
    calls = tuple(call for batch in batches for call in batch.calls)
    images = tuple(sorted((i for batch in batches for i in batch.images), key=lambda r: r.image.index))
    errors = tuple(call.error for call in calls if call.error)
    if not images:
        raise with_calls(nothing_generated(run, errors), calls, spent_micro_usd=budget.spent)
    return AttemptResult(
        job_id=request.job_id, attempt=request.attempt, planned_candidates=plan.candidates,
        success_target=plan.success_target, images=images, calls=calls,
        expected_cost_micro_usd=sum(c.expected_cost_micro_usd for c in calls if c.outcome == "ok"),
        actual_cost_micro_usd=budget.spent, expected_latency_s=plan.expected_latency_s,
        latency_s=latency_s, cost_cap_reached=plan.cost_cap_limited or budget.refused,
        errors=errors,
    )


def nothing_generated(run: AttemptRun, errors: tuple[str, ...]) -> RoutingError:
    request, budget = run.request, run.budget
    if budget.refused or run.plan.priced_out:
        tried = f" after {len(errors)} failed call(s): {errors[-1]}" if errors else ""
        return CostCapReached(f"job {request.job_id}: cost cap of {budget.cap} µUSD reached{tried}")
    return AllProvidersFailed(f"job {request.job_id}: no candidate generated", errors)
