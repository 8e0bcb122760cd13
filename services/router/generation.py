"""One attempt of one job, from its claim to the event that announces it.

The attempt is claimed first, so no two router processes generate it; the engine routes
it; its candidates go to the internal bucket as its calls return them, and a large attempt
announces them in chunks while it runs (`chunks.py`); then, in one
transaction, the claim is closed, the spend added to the job and CandidatesGenerated (or
GenerationFailed) put in the outbox. A process that dies half-way leaves the claim to lapse
and another process runs the attempt again; only the run that closes the claim is ever
published.
"""

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from services.common import telemetry, tracing
from services.common.contracts import (
    DEADLINE_EXCEEDED,
    AttemptStarted,
    CandidateRef,
    CandidatesGenerated,
    GenerationFailed,
    ProviderCall,
)
from services.common.data_keys import DataKeys, DataKeyUnavailable
from services.common.db import while_database_away
from services.common.runtime import ServiceRuntime
from services.common.storage import ATTEMPT_MEDIA_TYPE, Blob, ObjectStore, attempt_key
from services.common.supervision import Backoff
from services.common.templates import load_catalogue
from services.router import domain, metrics, store
from services.router.chunks import CandidateKeeper, StoredAt, steps_of, stored_ref
from services.router.engine import RoutingEngine
from services.router.pipeline import MissingInput, run_pipeline
from services.router.planning import VerdictTally
from services.router.routing_types import (
    AttemptResult,
    CallRecord,
    CostCapReached,
    NoCapableProvider,
    RoutedImage,
    RouteRequest,
    RoutingError,
)
from services.router.settings import RouterSettings
from services.router.store import AttemptRecord, ClaimedAttempt, Lease, QueuedAttempt
from services.router.subjects import store as subjects_store
from services.router.subjects.orders import Refused, SubjectOrders, Waiting

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    code: str
    reason: str
    error: RoutingError | None = None


def failure_of(error: RoutingError) -> AttemptFailure:
    if isinstance(error, CostCapReached):
        return AttemptFailure(domain.COST_CAP_REACHED, str(error), error)
    if isinstance(error, NoCapableProvider):
        return AttemptFailure("no_capable_provider", str(error), error)
    if isinstance(error, MissingInput):
        return AttemptFailure("missing_input", str(error), error)
    return AttemptFailure("all_providers_failed", str(error), error)


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run of a claimed attempt: the claim, what it asks the engine, and when it started."""

    claimed: ClaimedAttempt
    route: RouteRequest
    started_at: datetime

    @property
    def request(self) -> QueuedAttempt:
        return self.claimed.request

    @property
    def job(self) -> domain.AdmittedJob:
        return self.claimed.job


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """What a run announces: the attempt's record, its provider calls as published, its stored
    candidates, and why it generated nothing (None: it generated candidates)."""

    record: AttemptRecord
    calls: list[ProviderCall]
    refs: list[CandidateRef] = field(default_factory=list)
    failure: AttemptFailure | None = None


@dataclass(eq=False, kw_only=True)
class AttemptRunner:
    runtime: ServiceRuntime
    engine: RoutingEngine
    objects: ObjectStore
    settings: RouterSettings
    owner: str
    data_keys: DataKeys
    # Orders of a subject or across styles are made ready here before they are routed.
    subjects: SubjectOrders | None = None
    _rates_read_at: float = field(init=False, default=-math.inf)

    async def run(self, request: QueuedAttempt) -> None:
        # Clients see the job generating now; a takeover announces nothing new.
        started = AttemptStarted(job_id=request.job_id, tenant_id=request.tenant_id, attempt=request.attempt,
                                 images_needed=request.images_needed, started_at=datetime.now(UTC))
        async with self.runtime.pool.connection() as conn, conn.transaction():
            claim = await store.claim_job_attempt(conn, request, lease=Lease(self.owner, self.settings.claim_lease_s),
                                                  first_announces=self.runtime.outbox_row(started))
        if claim is None:
            return  # another router has it, or it is done
        self.runtime.relay.notify()
        try:
            await self._run_claimed(claim.claimed())
        except Exception:
            log.exception("attempt %s of job %s failed in the router (try %d)", request.attempt, request.job_id,
                          claim.tries)
            await self._release(request, claim.tries)

    async def _release(self, request: QueuedAttempt, tries: int) -> None:
        """Give the claim back, to be taken again after a pause; when even that fails (the
        database is away), the claim is no longer renewed and lapses, with the same effect."""
        try:
            async with self.runtime.pool.connection() as conn:
                await store.release_claim(conn, request, owner=self.owner, retry_in_s=min(60.0, 2.0 ** tries))
        except Exception:
            log.warning("could not release attempt %s of job %s; its claim lapses", request.attempt, request.job_id,
                        exc_info=True)

    async def _defer(self, request: QueuedAttempt) -> None:
        """Put the attempt back while the identity it needs trains (the training's end wakes it)."""
        async with self.runtime.pool.connection() as conn:
            await subjects_store.defer_attempt(conn, request, deferral=subjects_store.Deferral(
                self.owner, self.settings.identity_wait_s))

    async def refresh_pass_rates(self, max_age_s: float = 0.0) -> None:
        """Every router process shares the scorer's verdicts through the database; read
        unless they were read less than `max_age_s` ago."""
        if time.monotonic() - self._rates_read_at < max_age_s:
            return
        with telemetry.counted_for("router-pass-rates"):  # read at most so often, however many attempts
            async with self.runtime.pool.connection() as conn:
                rows = await store.verdict_counts(conn)
        for row in rows:
            tally = VerdictTally(provider=row["provider"], template=row["template"], passed=row["passed"], failed=row["failed"])
            self.engine.pass_rates.set_evidence(tally, row["age_s"])
        self._rates_read_at = time.monotonic()

    async def _run_claimed(self, claimed: ClaimedAttempt) -> None:
        request, job = claimed.request, claimed.job
        prompt = await self._opened_prompt(claimed)
        if prompt is None:
            return
        context = telemetry.JobContext(job_id=str(request.job_id), tenant_id=request.tenant_id, traceparent=job.traceparent, prompt=prompt)
        with (telemetry.job_context(context),
              tracing.continued(job.traceparent, f"generate attempt {request.attempt}")):
            await self._attempt(claimed, prompt)

    async def _opened_prompt(self, claimed: ClaimedAttempt) -> str | None:
        """The prompt in clear, for this attempt only (its key is not kept past it); None when
        the job's deadline passed while ingest was away (`_keyed`)."""
        spec = claimed.job.spec

        async def opened() -> str:
            try:
                return await self.data_keys.open(spec.job_id, spec.prompt)
            finally:
                self.data_keys.forget(spec.job_id)

        return await self._keyed(claimed, opened, what="its prompt's key")

    async def _keyed(self, claimed: ClaimedAttempt, work: Callable[[], Awaitable[T]], *, what: str) -> T | None:
        """`work()`, which needs a key of ingest's (the prompt's, the subject's). While ingest's
        data-key API does not answer (ingest restarts) the attempt waits for it with its claim
        held (renewed, as for any attempt running) and none of its tries spent; only the job's
        deadline ends the wait: the attempt then fails on it (None)."""
        spec, waits = claimed.job.spec, 0
        while True:
            try:
                return await work()
            except DataKeyUnavailable as away:
                waits += 1
                left = domain.time_left_s(spec, datetime.now(UTC))
                if left is not None and left <= 0:
                    await self._publish_failure(self._run_of(claimed, ""), AttemptFailure(
                        DEADLINE_EXCEEDED, f"the job's deadline ({spec.deadline_s} s) passed while attempt"
                                           f" {claimed.request.attempt} waited for {what}: {away}"))
                    return None
                if waits == 1 or waits % 10 == 0:
                    log.warning("attempt %d of job %s waits for %s (%d times so far): %s",
                                claimed.request.attempt, spec.job_id, what, waits, away)
                pause = Backoff(self.settings.service_wait_s, self.settings.service_wait_max_s).wait_s(waits)
                await asyncio.sleep(pause if left is None else min(pause, left))

    def _run_of(self, claimed: ClaimedAttempt, prompt: str) -> ClaimedRun:
        request, started_at = claimed.request, datetime.now(UTC)
        start = domain.AttemptStart(number=request.attempt, images_needed=request.images_needed,
                                    width=self.settings.image_width, height=self.settings.image_height,
                                    now=started_at, prompt=prompt, first_run=claimed.tries == 1)
        return ClaimedRun(claimed, domain.route_request(claimed.job, start), started_at)

    async def _attempt(self, claimed: ClaimedAttempt, prompt: str) -> None:
        request, job, tries = claimed.request, claimed.job, claimed.tries
        run = self._run_of(claimed, prompt)
        route = run.route
        if tries > self.settings.attempt_max_tries:
            await self._publish_failure(run, AttemptFailure("router_error", f"the router failed this attempt {tries - 1} times"))
            return
        if route.time_left_s is not None and route.time_left_s <= 0:
            await self._publish_failure(run, AttemptFailure(
                DEADLINE_EXCEEDED, f"the job's deadline ({job.spec.deadline_s} s) passed before attempt"
                                   f" {request.attempt} started"))
            return
        await self.refresh_pass_rates(self.settings.pass_rates_refresh_s)
        if self.subjects is not None and (job.spec.subject is not None or job.spec.styles):
            subjects = self.subjects
            prepared = await self._keyed(claimed, lambda: subjects.prepare(claimed, route), what="its subject's key")
            if prepared is None:
                return
            if isinstance(prepared, Waiting):
                await self._defer(request)
                return
            if isinstance(prepared, Refused):
                await self._publish_failure(run, AttemptFailure(prepared.code, prepared.reason))
                return
            route = prepared.route
        clock = time.perf_counter()
        keeper = CandidateKeeper(runtime=self.runtime, objects=self.objects, job=job, request=request, run=tries, owner=self.owner,
                                 chunk_candidates=self.settings.chunk_candidates, candidates_before=route.start_index)
        try:
            result = await run_pipeline(self.engine, replace(route, keep=keeper, input=await self._input_photo(job)),
                                        stages=load_catalogue().pipeline(job.spec.template))
        except RoutingError as error:
            metrics.observe_calls(error.calls)
            await self._publish_failure(run, self._failure(error, job))
            return
        metrics.observe_calls(result.calls)
        refs = await self._store_candidates(result.images, keeper)
        telemetry.STAGE_SECONDS.labels("router", "generate").observe(time.perf_counter() - clock)
        await self._publish_candidates(run, result, refs=list(refs))

    @staticmethod
    def _failure(error: RoutingError, job: domain.AdmittedJob) -> AttemptFailure:
        """Nothing generated: because the deadline came (the job expires), or as the engine says."""
        left = domain.time_left_s(job.spec, datetime.now(UTC))
        if left is not None and left <= 0:
            return AttemptFailure(DEADLINE_EXCEEDED, f"the job's deadline ({job.spec.deadline_s} s) passed: {error}", error)
        return failure_of(error)

    async def _input_photo(self, job: domain.AdmittedJob) -> bytes | None:
        """The job's input photo (an upload, or its reference photo), for pipelines that start from
        it; a video job's first frame, for one that starts by animating it."""
        video = job.spec.video
        if video is not None and video.first_frame_key is not None and \
                load_catalogue().pipeline(job.spec.template)[0].capability != "generate":
            return await self.objects.get(self.objects.internal_bucket, video.first_frame_key)
        key = job.spec.reference_key
        if key is None or not load_catalogue().templates.get(job.spec.template, _GENERATES).needs_input:
            return None
        return await self.objects.get(self.objects.internal_bucket, key)

    async def _store_candidates(self, routed: Sequence[RoutedImage], keeper: CandidateKeeper) -> list[CandidateRef]:
        """The attempt's candidates: those the keeper stored as their calls returned, and the
        rest (none, unless a stage dropped the keeper) in one object, one after another, in
        one request; each reference names its offset and size (the same key again on a retry)."""
        kept = {r.image.index: ref for r in routed if (ref := keeper.ref_of(r)) is not None}
        rest = [r for r in routed if r.image.index not in kept]
        if rest:
            spec = keeper.job.spec
            key = attempt_key(spec.tenant_id, spec.job_id, attempt=keeper.request.attempt)
            offsets = list(itertools.accumulate((len(r.image.data) for r in rest[:-1]), initial=0))
            await self.objects.put(self.objects.internal_bucket, key, content=Blob(b"".join(r.image.data for r in rest),
                                                                          ATTEMPT_MEDIA_TYPE))
            kept |= {r.image.index: stored_ref(r, StoredAt(key, offset), steps=steps_of(r))
                     for r, offset in zip(rest, offsets, strict=True)}
        return [kept[index] for index in sorted(kept)]

    async def _publish_candidates(self, run: ClaimedRun, result: AttemptResult, *, refs: list[CandidateRef]) -> None:
        request, job, route = run.request, run.job, run.route
        remaining = None if job.remaining_micro_usd is None else job.remaining_micro_usd - result.actual_cost_micro_usd
        outlook = domain.Outlook(remaining, self.engine.cheapest_price_micro_usd(self._priced_as_the_clip(route, job)),
                                 domain.time_left_s(job.spec, datetime.now(UTC)))
        reason = domain.stop_reason(request.attempt, self.settings.max_attempts, outlook=outlook)
        record = AttemptRecord(
            job_id=request.job_id, attempt=request.attempt, tenant_id=request.tenant_id,
            providers=",".join(result.providers_used), candidates=len(refs), cost_micro_usd=result.actual_cost_micro_usd,
            expected_cost_micro_usd=result.expected_cost_micro_usd,
            started_at=run.started_at, next_index=route.start_index + result.planned_candidates, stop_reason=reason)
        await self._publish(run, RunOutcome(record=record, calls=self._published_calls(run, result.calls), refs=refs))

    @staticmethod
    def _priced_as_the_clip(route: RouteRequest, job: domain.AdmittedJob) -> RouteRequest:
        """A video job's next candidate is a clip made by its last stage: priced as such."""
        if route.video is None:
            return route
        return replace(route, capability=load_catalogue().pipeline(job.spec.template)[-1].capability)

    async def _publish_failure(self, run: ClaimedRun, failure: AttemptFailure) -> None:
        request = run.request
        log.warning("attempt %d of job %s generated nothing: %s", request.attempt, request.job_id, failure.reason)
        error = failure.error
        record = AttemptRecord(
            job_id=request.job_id, attempt=request.attempt, tenant_id=request.tenant_id, providers="", candidates=0,
            cost_micro_usd=error.spent_micro_usd if error else 0, expected_cost_micro_usd=0,
            started_at=run.started_at, next_index=run.route.start_index, stop_reason=failure.code)
        calls = self._published_calls(run, error.calls if error else ())
        await self._publish(run, RunOutcome(record=record, calls=calls, failure=failure))

    def _published_calls(self, run: ClaimedRun, calls: tuple[CallRecord, ...]) -> list[ProviderCall]:
        return domain.provider_calls(calls, self.engine.registry, route=run.route)

    async def _publish(self, run: ClaimedRun, outcome: RunOutcome) -> None:
        """Close the claim, add the attempt to the job and announce it, in one transaction."""
        request = run.request
        record = replace(outcome.record, calls=tuple(call.model_dump(mode="json") for call in outcome.calls))
        outcome = replace(outcome, record=record)

        async def close_and_announce() -> bool:
            # The job's spend after the attempt is what it was at the claim and the attempt's cost
            # (a job's attempts run one after another), so the close can add the event itself.
            expected = run.job.spent_micro_usd + record.cost_micro_usd
            announcing = store.Announcing(self.runtime.outbox_row(self._event(run, outcome, spent=expected)), expected)
            async with self.runtime.pool.connection() as conn, conn.transaction():
                closed = await store.close_attempt(conn, request, owner=self.owner, record=record, announcing=announcing)
                if closed is None:
                    log.warning("attempt %d of job %s was taken over by another router, or is done; not publishing",
                                request.attempt, request.job_id)
                    return False
                if not closed.announced:  # the spend moved otherwise: announced as it is
                    await self.runtime.emit(conn, self._event(run, outcome, spent=closed.spent_micro_usd))
                return True

        # What the providers made is not thrown away for a database that restarts meanwhile:
        # the transaction runs again once it answers (a commit that did get through finds the
        # attempt done). Past the claim's lease another router may run the attempt instead.
        if await while_database_away(close_and_announce, self.runtime.pool, for_s=self.settings.claim_lease_s):
            self.runtime.relay.notify()

    @staticmethod
    def _event(run: ClaimedRun, outcome: RunOutcome, *, spent: int) -> GenerationFailed | CandidatesGenerated:
        job, record, failure = run.job, outcome.record, outcome.failure
        spec = job.spec
        if failure is not None and run.request.attempt == 1:
            # Nothing was generated for the job at all: it fails, and the ledger releases its credits.
            return GenerationFailed(job_id=spec.job_id, tenant_id=spec.tenant_id, attempt=1,
                                    failure_code=failure.code, reason=failure.reason)
        return CandidatesGenerated(
            job_id=spec.job_id, tenant_id=spec.tenant_id, attempt=run.request.attempt, images=spec.images,
            started_at=record.started_at, candidates=outcome.refs, cost_micro_usd=record.cost_micro_usd,
            spent_micro_usd=spent, budget_micro_usd=job.budget_micro_usd, final=record.stop_reason is not None,
            stop_reason=record.stop_reason, calls=outcome.calls, job=spec)


_GENERATES = load_catalogue().templates["generic"]
