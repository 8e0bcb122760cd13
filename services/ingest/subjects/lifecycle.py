"""A subject's life outside its photos: made with its own data key and trigger word, read,
erased by its tenant, and erased by the retention (`SubjectRetentionSweeper`: one replica a round,
like the job sweeper) once nobody ordered it for the tenant's retention (default 30 days)
unless the tenant keeps it. Every action is on the audit trail."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from services.common.audit import Action, record_action, system_actor
from services.common.contracts import SubjectChanged
from services.common.problems import Problem
from services.common.rounds import PeriodicRound, exclusive_round
from services.common.runtime import ServiceRuntime
from services.common.sealing import new_data_key
from services.common.storage import ObjectStore
from services.ingest import data_keys
from services.ingest.key_encryption import keyring_of
from services.ingest.settings import IngestSettings
from services.ingest.subjects import store
from services.ingest.subjects.changes import Erasure, current_view, erase
from services.ingest.subjects.domain import Subject, trigger_word

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NewSubject:
    tenant_id: str
    kind: str
    name: str
    keep: bool
    actor: str


@dataclass(frozen=True)
class Subjects:
    """The subjects' operations on the service's runtime, settings and object store."""

    runtime: ServiceRuntime
    settings: IngestSettings
    objects: ObjectStore

    async def create(self, new: NewSubject) -> UUID:
        """A new subject in `screening`, with its data key (wrapped before the transaction: a
        KMS call holds no row)."""
        key = await data_keys.wrapped(uuid4(), new_data_key(), keyring=keyring_of(self.settings))
        async with self.runtime.pool.connection() as conn, conn.transaction():
            await store.insert_subject(conn, store.SubjectRow(id=key.job_id, tenant_id=new.tenant_id, kind=new.kind,
                                                              name=new.name, keep=new.keep,
                                                              trigger_word=trigger_word()))
            await data_keys.insert(conn, new.tenant_id, key=key)
            await record_action(self.runtime, conn, action=Action(actor=new.actor, name="subject.create", target=f"subject:{key.job_id}",
                                                           tenant_id=new.tenant_id, details={"kind": new.kind, "keep": new.keep}))
        self.runtime.relay.notify()
        return key.job_id

    async def view(self, tenant_id: str, subject_id: UUID) -> Subject:
        """The tenant's subject: 404 for one it does not have (another tenant's too), 410 once erased."""
        async with self.runtime.pool.connection() as conn:
            row = await store.read_subject(conn, subject_id, tenant_id=tenant_id)
            refuse_missing(row, subject_id)
            return await current_view(conn, subject_id, settings=self.settings)

    async def erase(self, tenant_id: str, subject_id: UUID, *, actor: str) -> None:
        """Erase the tenant's subject: photos, embeddings, centroid and key at once; the router
        deletes its identities on the SubjectChanged(erased) this publishes."""
        async with self.runtime.pool.connection() as conn, conn.transaction():
            row = await store.read_subject(conn, subject_id, tenant_id=tenant_id, lock=True)
            refuse_missing(row, subject_id)
            assert row is not None
            event, erasure = await erase(conn, row, at=datetime.now(UTC))
            await self.runtime.emit(conn, event)
            await record_action(self.runtime, conn, action=Action(actor=actor, name="subject.erase", target=f"subject:{subject_id}", tenant_id=tenant_id))
        self.runtime.relay.notify()
        await erasure.delete_photos(self.objects)


def refuse_missing(row: dict[str, object] | None, subject_id: UUID) -> None:
    if row is None:
        raise Problem(status=404, slug="subject-not-found", detail=f"no subject {subject_id}")
    if row["state"] == "erased":
        raise Problem(status=410, slug="subject-erased", detail=f"subject {subject_id} was erased")


class SubjectRetentionSweeper(PeriodicRound):
    """Erases, one replica a round, the subjects past their tenant's retention."""

    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self.interval_s, self.task_name = subjects.settings.subject_sweep_interval_s, "ingest-subject-retention"

    async def sweep_once(self) -> int:
        """One round; how many subjects it erased (0 when another replica holds the round)."""
        runtime, settings = self.subjects.runtime, self.subjects.settings
        erased: list[tuple[SubjectChanged, Erasure]] = []
        async with exclusive_round(runtime.pool, runtime.name, round_name="subject-retention") as conn:
            if conn is None:
                return 0
            for due in await store.subjects_past_retention(conn, settings.subject_retention_days,
                                                           limit=settings.subject_sweep_batch):
                row = await store.read_subject(conn, due["id"], tenant_id=None)
                assert row is not None, "a row the round holds"
                event, erasure = await erase(conn, row, at=datetime.now(UTC))
                await runtime.emit(conn, event)
                await record_action(runtime, conn, action=Action(actor=system_actor(runtime.service), name="subject.erase",
                                                          target=f"subject:{row['id']}", tenant_id=row["tenant_id"],
                                                          details={"reason": "retention"}))
                erased.append((event, erasure))
        if erased:
            log.info("retention erased %d subjects", len(erased))
            runtime.relay.notify()
        for _, erasure in erased:
            await erasure.delete_photos(self.subjects.objects)
        return len(erased)
