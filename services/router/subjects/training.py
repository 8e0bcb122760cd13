"""Trainings as remote jobs: the router process that claims an identity drives its training.

`TrainingSupervisor` looks every `look_interval_s` for identities with work owed that no live
router holds (a training to drive, a cleanup) and claims them for a lease it renews while it
works on them, as attempts are claimed: a router that dies lets its claims lapse, and another
takes the training up where its handle says. Driving one (`drive`):

1. no handle yet: open the subject's photos, submit the training, and write its handle down
   before the first poll (a training canceled or erased meanwhile is canceled at once);
2. poll it every `trainer.poll_interval_s` on the clock (or when its provider calls back),
   errors that say nothing final (the network, 429, 5xx) tried again with backoff; stop when
   the identity is no longer training (the order canceled, the subject erased: the cleanup
   cancels it at the provider); past `trainer.timeout_s` from its submission, cancel it and fail;
3. fetch the weights at once, asking the training again for a fresh URL when its output's host
   answers that it expired, and copy them into the internal bucket;
4. record the end with IdentityTrained or IdentityTrainingFailed (the order's job events), in one
   transaction, and wake the attempts waiting for it.

A cleanup (`cancel`: the order was canceled; `erase`: the subject was erased) cancels a training
still running at the provider, deletes the weights' copy and what the provider keeps of it
where its API can (a Replicate version), and is done; each step may be done again.
"""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from uuid import UUID

from services.common import telemetry
from services.common.contracts import IdentityTrained, IdentityTrainingFailed
from services.common.runtime import ServiceRuntime
from services.common.supervision import failed, stop_tasks, supervise
from services.router import store as router_store
from services.router.clock import Clock, LoopClock
from services.router.providers.base import ProviderError
from services.router.providers.trainers import Trainer, TrainingOutput, TrainingRequest, photos_zip
from services.router.providers.webhooks import WebhookInbox
from services.router.store import Lease
from services.router.subjects import store
from services.router.subjects.files import KeptWeights, SubjectErased, SubjectFiles, WeightsPlace

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    look_interval_s: float = 2.0
    lease_s: float = 30.0
    max_trainings: int = 8


@dataclass(frozen=True, slots=True)
class TrainingFailure:
    code: str
    reason: str
    tenant_fault: bool = False


def failure_of(error: ProviderError) -> TrainingFailure:
    """A training the provider failed, refused or ran out of time on: never the tenant's fault,
    whose photos were screened and accepted here (what a trainer refuses is between the
    platform and the provider, and a status misread would otherwise be billed to the tenant)."""
    if error.kind == "bad_request":
        return TrainingFailure("training_refused", str(error))
    if error.kind == "timeout":
        return TrainingFailure("training_timeout", str(error))
    return TrainingFailure("training_failed", str(error))


class Stopped(Exception):
    """The identity is no longer training (its order was canceled, its subject erased)."""


@dataclass(eq=False, kw_only=True)
class TrainingSupervisor:
    runtime: ServiceRuntime
    trainers: Mapping[str, Trainer]
    files: SubjectFiles
    owner: str
    settings: TrainingSettings = TrainingSettings()
    clock: Clock = field(default_factory=LoopClock)
    webhooks: WebhookInbox | None = None
    running: dict[UUID, "asyncio.Task[None]"] = field(init=False, default_factory=dict)
    _tasks: list["asyncio.Task[None]"] = field(init=False, default_factory=list)

    def start(self) -> None:
        self._tasks = [supervise("router-trainings", self._look_forever),
                       supervise("router-renew-trainings", self._renew_forever)]

    async def stop(self) -> None:
        """Stop driving: trainings go on at their providers, and the next router resumes them."""
        await stop_tasks(*self._tasks, *self.running.values())

    async def _look_forever(self) -> None:
        while True:
            await self.look()
            await asyncio.sleep(self.settings.look_interval_s)

    async def look(self) -> None:
        room = self.settings.max_trainings - len(self.running)
        if room <= 0:
            return
        with telemetry.counted_for("router-trainings"):
            async with self.runtime.pool.connection() as conn:
                rows = await store.claim_identities(conn, self._lease, limit=room)
        for row in rows:
            self.running[row.identity_id] = asyncio.create_task(self._run(row), name=f"identity-{row.identity_id}")

    async def _run(self, row: store.IdentityRow) -> None:
        try:
            await self.drive(row)
        except Exception:
            failed("router-training")
        finally:
            self.running.pop(row.identity_id, None)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            if self.running:
                with telemetry.counted_for("router-renew-trainings"):
                    async with self.runtime.pool.connection() as conn:
                        await store.renew_identity_claims(conn, self._lease, identity_ids=list(self.running))

    @property
    def _lease(self) -> Lease:
        return Lease(self.owner, self.settings.lease_s)

    # ---- one identity --------------------------------------------------------------------

    async def drive(self, row: store.IdentityRow) -> None:
        """Do the work the identity owes, as claimed by this router."""
        if row.cleanup is not None:
            await self._clean(row)
        elif row.state == "training":
            await self._train(row)
            async with self.runtime.pool.connection() as conn:
                await store.release_identity(conn, row.identity_id, owner=self.owner)

    async def _train(self, row: store.IdentityRow) -> None:
        trainer = self.trainers.get(row.provider)
        if trainer is None:
            await self._failed(row, TrainingFailure("no_trainer", f"no provider {row.provider!r} trains here"))
            return
        deadline = self.clock.now() + max(0.0, trainer.training.timeout_s - row.age_s)
        handle = row.handle
        try:
            if handle is None:
                handle = await self._submitted(row, trainer)
            output = await self._waited(Driven(row=row, trainer=trainer, handle=handle, deadline=deadline))
            data = await self._fetched(Driven(row=row, trainer=trainer, handle=handle, deadline=deadline), output)
        except Stopped:
            return  # the cleanup its cancel or erasure owes cancels it at the provider
        except SubjectErased as error:
            await self._failed(row, TrainingFailure("subject_erased", str(error), tenant_fault=True))
            return
        except ProviderError as error:
            if handle is not None and not error.terminal:
                await self._cancel_quietly(trainer, handle)
            await self._failed(row, failure_of(error))
            return
        finally:
            await self._drop_photos(row, trainer, handle=handle)
        kept = await self.files.keep_weights(_place(row), data)
        await self._trained(row, Made(kept, output, trainer.training.price_micro_usd))

    async def _submitted(self, row: store.IdentityRow, trainer: Trainer) -> dict[str, object]:
        async with self.runtime.pool.connection() as conn:
            job = await router_store.load_job(conn, row.job_id)
        if job is None or job.spec.subject is None:
            raise ProviderError(kind="bad_request", message=f"identity {row.identity_id}: its order {row.job_id} is unknown here",
                                terminal=True)
        photos = await self.files.photos(job.spec.subject)
        images_url = None
        if trainer.training.images.via == "presigned":
            kept = await self.files.keep_photos(_place(row), photos_zip(photos))
            images_url = self.files.link(kept.key, int(trainer.training.timeout_s) + 3600)
        handle = await trainer.submit(TrainingRequest(identity_id=str(row.identity_id), trigger_word=row.trigger_word, photos=photos, images_url=images_url,
                                                      kind=job.spec.subject.kind))
        async with self.runtime.pool.connection() as conn:
            written = await store.training_submitted(conn, _with_handle(row, handle), owner=self.owner)
        if not written:
            await self._cancel_quietly(trainer, handle)
            await self._drop_photos(row, trainer, handle=handle)
            raise Stopped()
        return handle

    async def _waited(self, driven: "Driven") -> TrainingOutput:
        trainer, handle, failures = driven.trainer, driven.handle, 0
        try:
            while True:
                if self.clock.now() >= driven.deadline:
                    raise ProviderError(kind="timeout", message=f"{trainer.name}: the training did not end within"
                                                   f" {trainer.training.timeout_s:g} s")
                await self._still_training(driven.row)
                try:
                    output = await trainer.poll(handle)
                except ProviderError as error:
                    if error.terminal or not (error.transient or error.kind in ("rate_limited", "server_error",
                                                                                "timeout")):
                        raise
                    failures += 1
                    doubled = trainer.training.poll_interval_s * 2 ** (failures - 1)
                    await self.clock.sleep(min(trainer.config.timeouts.poll_backoff_max_s,
                                               max(doubled, error.retry_after_s or 0.0)))
                    continue
                if output is not None:
                    return output
                failures = 0
                await self._pause(driven)
        finally:
            if self.webhooks is not None:
                self.webhooks.forget(trainer.name, trainer.remote_id(handle))

    async def _pause(self, driven: "Driven") -> None:
        trainer = driven.trainer
        hooks = trainer.config.webhooks
        if hooks is not None and self.webhooks is not None:
            await self.webhooks.wait(trainer.name, trainer.remote_id(driven.handle), timeout_s=hooks.poll_interval_s)
        else:
            await self.clock.sleep(trainer.training.poll_interval_s)

    async def _still_training(self, row: store.IdentityRow) -> None:
        # Asked at every poll of the training, so as often as it lasts: counted as a timer's.
        with telemetry.counted_for("router-training-polls"):
            async with self.runtime.pool.connection() as conn:
                state, _ = await store.current_state(conn, row.identity_id)
        if state != "training":
            raise Stopped()

    async def _fetched(self, driven: "Driven", output: TrainingOutput) -> bytes:
        """The weights; an output whose host says it expired is asked of the training once more."""
        try:
            return await driven.trainer.weights(output)
        except ProviderError as error:
            if not error.output_gone:
                raise
        fresh = await self._waited(driven)
        try:
            return await driven.trainer.weights(fresh)
        except ProviderError as error:
            raise ProviderError(kind="server_error", message=f"{driven.trainer.name}: the weights expired before they were"
                                                f" copied: {error}", terminal=True) from None

    async def _trained(self, row: store.IdentityRow, made: "Made") -> None:
        end = store.TrainingEnd(identity_id=row.identity_id, owner=self.owner, state="trained",
                                cost_micro_usd=made.cost_micro_usd, weights_key=made.kept.key,
                                weights_sha256=made.kept.sha256, weights_size_bytes=made.kept.size_bytes,
                                provider_version=made.output.provider_version)
        async with self.runtime.pool.connection() as conn, conn.transaction():
            recorded = await store.training_ended(conn, end)
            if recorded:
                await self.runtime.emit(conn, IdentityTrained(
                    job_id=row.job_id, tenant_id=row.tenant_id, subject_id=row.subject_id, identity_id=row.identity_id,
                    photo_set_sha256=row.photo_set_sha256, provider=row.provider, model=row.model,
                    weights_key=made.kept.key, weights_sha256=made.kept.sha256,
                    weights_size_bytes=made.kept.size_bytes, trigger_word=row.trigger_word,
                    cost_micro_usd=made.cost_micro_usd, trained_at=datetime.now(UTC)))
        if recorded:
            self.runtime.relay.notify()
        else:  # canceled or erased while its weights were copied: nothing of it stays
            await self.files.drop_weights(made.kept.key)
            trainer = self.trainers.get(row.provider)
            if trainer is not None:
                await trainer.forget(made.output.provider_version)

    async def _failed(self, row: store.IdentityRow, failure: TrainingFailure) -> None:
        log.warning("the training of identity %s failed: %s", row.identity_id, failure.reason)
        end = store.TrainingEnd(identity_id=row.identity_id, owner=self.owner, state="failed",
                                failure_code=failure.code, reason=failure.reason[:500])
        async with self.runtime.pool.connection() as conn, conn.transaction():
            if await store.training_ended(conn, end):
                await self.runtime.emit(conn, IdentityTrainingFailed(
                    job_id=row.job_id, tenant_id=row.tenant_id, subject_id=row.subject_id,
                    identity_id=row.identity_id, failure_code=failure.code, reason=failure.reason[:500],
                    tenant_fault=failure.tenant_fault, failed_at=datetime.now(UTC)))
        self.runtime.relay.notify()

    # ---- cleanups ------------------------------------------------------------------------

    async def _clean(self, row: store.IdentityRow) -> None:
        trainer = self.trainers.get(row.provider)
        if trainer is not None and row.handle is not None:
            await self._cancel_quietly(trainer, row.handle)  # a training that ended answers it cannot
            await self._drop_photos(row, trainer, handle=row.handle)
        if row.cleanup == "erase":
            for key in {_place(row).key, _place(row).photos_key, *([row.weights_key] if row.weights_key else [])}:
                await self.files.drop_weights(key)
            if trainer is not None:
                try:
                    await trainer.forget(row.provider_version)
                except ProviderError as error:
                    if error.transient or error.kind in ("rate_limited", "server_error", "timeout"):
                        raise  # tried again once the claim lapses
                    log.warning("%s keeps identity %s's version %s: %s", row.provider, row.identity_id,
                                row.provider_version, error)
        async with self.runtime.pool.connection() as conn:
            await store.cleaned(conn, row.identity_id, owner=self.owner)

    async def _cancel_quietly(self, trainer: Trainer, handle: dict[str, object]) -> None:
        try:
            await asyncio.wait_for(trainer.cancel(handle), trainer.config.timeouts.submit_s)
        except (ProviderError, TimeoutError):
            pass

    async def _drop_photos(self, row: store.IdentityRow, trainer: Trainer, *, handle: dict[str, object] | None) -> None:
        """The photos' copies a training read, gone once it ended: the zip its link named, the
        files uploaded to the provider where its API deletes them."""
        if trainer.training.images.via == "presigned":
            await self.files.drop_weights(_place(row).photos_key)
        if handle is not None:
            try:
                await trainer.discard_photos(handle)
            except ProviderError as error:  # they expire at the provider all the same
                log.warning("%s keeps the photos of identity %s's training until they expire: %s", trainer.name,
                            row.identity_id, error)


@dataclass(frozen=True, slots=True, kw_only=True)
class Driven:
    """A training being driven: its identity, trainer, handle, and the clock time it must end by."""

    row: store.IdentityRow
    trainer: Trainer
    handle: dict[str, object]
    deadline: float


@dataclass(frozen=True, slots=True)
class Made:
    kept: KeptWeights
    output: TrainingOutput
    cost_micro_usd: int


def _place(row: store.IdentityRow) -> WeightsPlace:
    return WeightsPlace(tenant_id=row.tenant_id, subject_id=row.subject_id, identity_id=row.identity_id, base=row.base)


def _with_handle(row: store.IdentityRow, handle: dict[str, object]) -> store.IdentityRow:
    return replace(row, handle=dict(handle))
