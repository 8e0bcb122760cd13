"""An attempt of an order of a subject, or across styles, made ready to route.

`SubjectOrders.prepare(claimed, route)` gives the attempt's route with its styles (styles.py)
and, for a subject, the identity every generation carries:

1. The order's plan, made once (its first attempt's first run) and announced with
   IdentityPlanned in the same transaction: the cheapest way by expected cost per passing
   image (choosing.py) among reference generation, an identity of the subject's photo set
   already trained or in training (reused, nothing more to pay), and a training at each
   trainer (written down as the subject's one live identity: when two orders race, the
   second finds the first's and waits for it). A trainer whose training of the photo set
   failed is tried again only when every trainer's has: another trains it first.
2. The identity for this run: the photos (reference), or the trained weights (a presigned link
   to their copy, the bytes for the local model, the Replicate version). An identity still
   training puts the attempt back (`Waiting`) until it ends; one whose training failed, was
   canceled or erased moves the order to reference generation (announced again) where a
   model takes reference photos, or fails it.

The route's template becomes the pass-rate key of the way (`planning.identity_key`), so the
engine ranks providers, and the scorer's verdicts teach, the pass rate of that way.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from services.common.contracts import IdentityPlanned, IdentityUse, SubjectRef
from services.common.runtime import ServiceRuntime
from services.router.engine import RoutingEngine
from services.router.planning import identity_key
from services.router.providers.identity_inputs import IdentityInput
from services.router.providers.registry import ProviderConfig
from services.router.routing_types import RouteRequest, RoutingError
from services.router.store import ClaimedAttempt
from services.router.styles import style_plan
from services.router.subjects import store
from services.router.subjects.choosing import Priced, Way, cheapest_way, per_passing_image, why_no_way
from services.router.subjects.files import SubjectErased, SubjectFiles


@dataclass(frozen=True, slots=True)
class Ready:
    route: RouteRequest


@dataclass(frozen=True, slots=True)
class Waiting:
    """The identity the order waits for is still training."""

    identity_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Refused:
    code: str
    reason: str


Prepared = Ready | Waiting | Refused


@dataclass(frozen=True, slots=True)
class Attempted:
    """The claimed attempt being prepared and its route so far."""

    claimed: ClaimedAttempt
    route: RouteRequest

    @property
    def subject(self) -> SubjectRef:
        assert self.claimed.job.spec.subject is not None
        return self.claimed.job.spec.subject

    @property
    def key(self) -> store.SubjectKey:
        spec = self.claimed.job.spec
        return store.SubjectKey(spec.tenant_id, self.subject.subject_id, self.subject.photo_set_sha256)


@dataclass(eq=False, kw_only=True)
class SubjectOrders:
    runtime: ServiceRuntime
    engine: RoutingEngine
    files: SubjectFiles
    link_ttl_s: int = 6 * 3600

    async def prepare(self, claimed: ClaimedAttempt, route: RouteRequest) -> Prepared:
        route = await self._styled(claimed, route)
        if claimed.job.spec.subject is None:
            return Ready(route)
        attempted = Attempted(claimed, route)
        plan = await self._plan(attempted)
        if isinstance(plan, Refused):
            return plan
        try:
            return await self._carried(attempted, plan)
        except SubjectErased as error:
            return Refused("subject_erased", str(error))

    async def _styled(self, claimed: ClaimedAttempt, route: RouteRequest) -> RouteRequest:
        spec, attempt = claimed.job.spec, claimed.request.attempt
        if not spec.styles:
            return route
        needed = None
        if attempt > 1:
            async with self.runtime.pool.connection() as conn:
                needed = await store.needed_by_style(conn, spec.job_id, attempt=attempt)
        return replace(route, styles=style_plan(spec.styles, needed, start=route.start_index))

    # ---- the plan ----------------------------------------------------------------------

    async def _plan(self, attempted: Attempted) -> store.JobPlan | Refused:
        spec = attempted.claimed.job.spec
        async with self.runtime.pool.connection() as conn:
            planned = await store.job_plan(conn, spec.job_id)
            live, failed = await store.identities_so_far(conn, attempted.key) if planned is None else (None, set())
        if planned is not None:
            return planned
        ways, tried = self._ways(attempted, live, failed=failed)
        way = cheapest_way(ways, spec.identity)
        if way is None:
            return Refused("no_capable_provider", f"job {spec.job_id}: {why_no_way(spec.identity, tried)}")
        return await self._announced(attempted, way)

    def _ways(self, attempted: Attempted, live: store.IdentityRow | None, *,
              failed: set[str]) -> tuple[list[Way], list[str]]:
        spec, subject = attempted.claimed.job.spec, attempted.subject
        candidates = max(spec.candidates, spec.images)
        ways, tried = [], []
        reference = self._priced(attempted.route, IdentityInput(mode="reference", subject_id=str(subject.subject_id), photos=(b"",)))
        if reference is not None:
            ways.append(Way(mode="reference", cost_per_passing_image=per_passing_image(reference[1], 0, candidates=candidates),
                            provider=reference[0], model=self._model_of(reference[0], attempted.route)))
        else:
            tried.append("no model takes reference photos")
        ways += self._lora_ways(attempted, live, failed=failed)
        if not any(way.mode == "lora" for way in ways):
            tried.append("no trained identity and no trainer whose weights a capable model takes")
        return ways, tried

    def _lora_ways(self, attempted: Attempted, live: store.IdentityRow | None, *, failed: set[str]) -> list[Way]:
        route, subject = attempted.route, attempted.subject
        spec = attempted.claimed.job.spec
        candidates = max(spec.candidates, spec.images)
        if live is not None:
            probe = IdentityInput(mode="lora", subject_id=str(subject.subject_id), base=live.base, weights_url="planned",
                                  provider_version=live.provider_version or "planned")
            priced = self._priced(route, probe)
            return [] if priced is None else [Way(mode="lora", identity_id=live.identity_id, provider=live.provider,
                                                  model=live.model, weights_sha256=live.weights_sha256,
                                                  cost_per_passing_image=per_passing_image(priced[1], 0, candidates=candidates))]
        ways = []
        for config in self._trainers_to_try(failed):
            trainer = config.trainer
            assert trainer is not None
            if not trainer.images.min <= len(subject.photos) <= trainer.images.max or \
                    (route.time_left_s is not None and route.time_left_s < trainer.expected_s):
                continue
            probe = IdentityInput(mode="lora", subject_id=str(subject.subject_id), base=trainer.base, weights_url="planned",
                                  provider_version="planned" if config.adapter == "replicate" else None)
            priced = self._priced(route, probe)
            if priced is not None:
                cost = per_passing_image(priced[1], trainer.price_micro_usd, candidates=candidates)
                ways.append(Way(mode="lora", cost_per_passing_image=cost, provider=config.name,
                                model=trainer.model.name, trains=True, training_micro_usd=trainer.price_micro_usd))
        return ways

    def _trainers_to_try(self, failed: set[str]) -> list[ProviderConfig]:
        """The trainers an order may train at: those whose training of these photos has not
        failed before, while there are any; else all of them again."""
        trainers = self.engine.registry.trainers()
        untried = [config for config in trainers if config.name not in failed]
        return untried or trainers

    def _priced(self, route: RouteRequest, probe: IdentityInput) -> tuple[str, Priced] | None:
        """The best provider for the way and what an image there costs and passes; None if none can."""
        template = identity_key(route.template, probe.mode)
        try:
            primary = self.engine.plan(replace(route, identity=probe, template=template)).primary
        except RoutingError:
            return None
        return primary.provider, Priced(primary.price_micro_usd, primary.pass_rate)

    def _model_of(self, provider: str, route: RouteRequest) -> str:
        config = self.engine.registry.providers[provider]
        pin = config.model_for(route.model, route.model_version) or config.models[0]
        return pin.name

    async def _announced(self, attempted: Attempted, way: Way) -> store.JobPlan:
        """Write the plan (and the training it starts) and announce it, in one transaction."""
        spec, subject = attempted.claimed.job.spec, attempted.subject
        identity_id = way.identity_id
        async with self.runtime.pool.connection() as conn, conn.transaction():
            if way.trains:
                row = self._training(attempted, way)
                if await store.new_identity(conn, row):
                    identity_id = row.identity_id
                else:  # another order's training of this photo set came first: this one reuses it
                    live = await store.live_identity(conn, attempted.key)
                    assert live is not None, "the unique index refused the row for a live one"
                    way = Way(mode="lora", cost_per_passing_image=way.cost_per_passing_image, provider=live.provider,
                              model=live.model, identity_id=live.identity_id)
                    identity_id = live.identity_id
            plan = store.JobPlan(job_id=spec.job_id, subject_id=subject.subject_id, mode=way.mode,
                                 identity_id=identity_id, trains=way.trains, provider=way.provider, model=way.model)
            if await store.plan_job(conn, plan, rates_key=identity_key(spec.template, way.mode)):
                await self.runtime.emit(conn, self._event(attempted, plan, way=way))
        self.runtime.relay.notify()
        return plan

    def _training(self, attempted: Attempted, way: Way) -> store.IdentityRow:
        config = self.engine.registry.providers[way.provider]
        assert config.trainer is not None
        spec, subject = attempted.claimed.job.spec, attempted.subject
        return store.IdentityRow(identity_id=uuid.uuid4(), tenant_id=spec.tenant_id, subject_id=subject.subject_id,
                                 photo_set_sha256=subject.photo_set_sha256, provider=config.name,
                                 model=config.trainer.model.name, base=config.trainer.base,
                                 trigger_word=subject.trigger_word, job_id=spec.job_id,
                                 expected_cost_micro_usd=way.training_micro_usd)

    @staticmethod
    def _event(attempted: Attempted, plan: store.JobPlan, *, way: Way) -> IdentityPlanned:
        spec = attempted.claimed.job.spec
        use = IdentityUse(subject_id=plan.subject_id, mode="lora" if plan.mode == "lora" else "reference",
                          identity_id=plan.identity_id, provider=plan.provider, model=plan.model,
                          weights_sha256=way.weights_sha256 if plan.mode == "lora" else None)
        return IdentityPlanned(job_id=spec.job_id, tenant_id=spec.tenant_id, use=use, trains=plan.trains,
                               expected_cost_micro_usd=way.training_micro_usd if plan.trains else 0,
                               planned_at=datetime.now(UTC))

    # ---- the identity this run carries --------------------------------------------------

    async def _carried(self, attempted: Attempted, plan: store.JobPlan) -> Prepared:
        subject = attempted.subject
        if plan.mode == "lora":
            async with self.runtime.pool.connection() as conn:
                row = await store.identity(conn, plan.identity_id) if plan.identity_id else None
            if row is not None and row.state == "training":
                return Waiting(row.identity_id)
            if row is not None and row.state == "trained":
                return Ready(self._routed(attempted, await self._trained(row)))
            moved = await self._by_reference(attempted, plan)
            if isinstance(moved, Refused):
                return moved
        photos = await self.files.photos(subject)
        identity = IdentityInput(mode="reference", subject_id=str(subject.subject_id), trigger_word=subject.trigger_word,
                                 kind=subject.kind, photos=photos, photo_set=subject.photo_set_sha256)
        return Ready(self._routed(attempted, identity))

    def _routed(self, attempted: Attempted, identity: IdentityInput) -> RouteRequest:
        template = identity_key(attempted.claimed.job.spec.template, identity.mode)
        return replace(attempted.route, identity=identity, template=template)

    async def _trained(self, row: store.IdentityRow) -> IdentityInput:
        assert row.weights_key is not None
        local = row.weights_key.endswith(".zip")
        return IdentityInput(mode="lora", subject_id=str(row.subject_id), trigger_word=row.trigger_word, base=row.base,
                             weights_url=None if local else self.files.link(row.weights_key, self.link_ttl_s),
                             provider_version=row.provider_version,
                             weights=await self.files.weights(row.weights_key) if local else None)

    async def _by_reference(self, attempted: Attempted, plan: store.JobPlan) -> store.JobPlan | Refused:
        """The training the order waited for did not give an identity: on by reference, announced."""
        spec, subject = attempted.claimed.job.spec, attempted.subject
        probe = IdentityInput(mode="reference", subject_id=str(subject.subject_id), photos=(b"",))
        priced = self._priced(attempted.route, probe) if spec.identity != "lora" else None
        if priced is None:
            return Refused("identity_training_failed", f"job {spec.job_id}: the subject's identity was not trained,"
                                                       " and no model that takes reference photos may carry it")
        moved = replace(plan, mode="reference", identity_id=None, trains=False, provider=priced[0],
                        model=self._model_of(priced[0], attempted.route))
        async with self.runtime.pool.connection() as conn, conn.transaction():
            if await store.plan_by_reference(conn, moved, rates_key=identity_key(spec.template, "reference")):
                await self.runtime.emit(conn, self._event(attempted, moved, way=Way(mode="reference",
                                                                                 cost_per_passing_image=0.0)))
        self.runtime.relay.notify()
        return moved
