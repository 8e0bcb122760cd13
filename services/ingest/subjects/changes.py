"""A subject's changes, written and announced: each move of its state counts in `seq` and is
published (SubjectChanged) in the transaction that writes it; an erasure forgets its photos,
embeddings, centroid and data key, and announces `erased` so the router deletes the
identities trained from it. The identity events of orders (the router's) move it, and the
retention erases the subjects nobody ordered for a while."""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.common.contracts import IdentityPlanned, SubjectChanged
from services.common.db import Conn
from services.common.storage import ObjectStore, StorageError
from services.ingest import data_keys
from services.ingest.settings import IngestSettings
from services.ingest.subjects import store
from services.ingest.subjects.domain import Changed, IdentityEvent, Subject, identity_move
from services.ingest.subjects.views import subject_view

log = logging.getLogger(__name__)


async def retention_of(conn: Conn, tenant_id: str, *, settings: IngestSettings) -> timedelta:
    """How long the tenant's subjects are kept after their last order."""
    days = await store.subject_retention_days(conn, tenant_id)
    return timedelta(days=days or settings.subject_retention_days)


async def current_view(conn: Conn, subject_id: UUID, *, settings: IngestSettings) -> Subject:
    row = await store.read_subject(conn, subject_id, tenant_id=None)
    assert row is not None, f"subject {subject_id} is read in the transaction that holds it"
    return subject_view(row, await store.subject_photos(conn, subject_id),
                        retention=await retention_of(conn, row["tenant_id"], settings=settings))


@dataclass(frozen=True, kw_only=True)
class SubjectChange:
    """A subject's row before a change, and what the change sets (the rest stays)."""

    before: dict[str, Any]
    at: datetime
    state: str
    updates: dict[str, Any] = field(default_factory=dict)

    @property
    def announced(self) -> bool:
        return bool(self.state != self.before["state"])


async def write_change(conn: Conn, change: SubjectChange, *, settings: IngestSettings) -> SubjectChanged | None:
    """Write the change in the caller's transaction (which holds the subject's row); the event
    that announces it, when its state moved, for the caller to publish."""
    before = change.before
    fields = {name: before[name] for name in ("photo_set_sha256", "centroid", "reason", "identity")} | change.updates
    seq = before["seq"] + (1 if change.announced else 0)
    await store.update_subject(conn, store.SubjectUpdate(id=before["id"], state=change.state, seq=seq, at=change.at,
                                                         **fields))
    if not change.announced:
        return None
    return Changed(await current_view(conn, before["id"], settings=settings), change.at).event(before["tenant_id"], seq)


@dataclass(frozen=True)
class Erasure:
    """What erasing a subject leaves to do after its transaction: the sealed photos to delete
    from the internal bucket (unreadable already: their key is gone)."""

    photo_keys: list[str]

    async def delete_photos(self, objects: ObjectStore) -> None:
        for key in self.photo_keys:
            try:
                await objects.delete(objects.internal_bucket, key)
            except StorageError as error:  # sealed under a key that no longer exists: nothing can read it
                log.warning("the sealed photo %s of an erased subject could not be deleted: %s", key, error)


async def erase(conn: Conn, row: dict[str, Any], *, at: datetime) -> tuple[SubjectChanged, Erasure]:
    """Erase a subject (its row held by the caller's transaction): photos, embeddings, centroid,
    identity and data key; the SubjectChanged(erased) to publish, and what is left to delete."""
    keys = await store.erase_subject(conn, row["id"], at=at)
    await data_keys.destroy(conn, row["id"])  # every sealed photo, embedding and centroid is now unreadable
    event = SubjectChanged(tenant_id=row["tenant_id"], subject_id=row["id"], kind=row["kind"], state="erased",
                           seq=row["seq"] + 1, reason="erased", view={"id": str(row["id"]), "state": "erased"},
                           changed_at=at)
    return event, Erasure(keys)


async def moved_by_identity(conn: Conn, event: IdentityEvent, *, settings: IngestSettings) -> SubjectChanged | None:
    """What an order's identity event does to its subject, written; the announcement, if any."""
    subject_id = event.use.subject_id if isinstance(event, IdentityPlanned) else event.subject_id
    row = await store.read_subject(conn, subject_id, tenant_id=event.tenant_id, lock=True)
    if row is None:
        log.warning("%s for unknown subject %s ignored", event.event_type, subject_id)
        return None
    move = identity_move(row["state"], row["photo_set_sha256"], event=event)
    if move is None:
        return None
    updates: dict[str, Any] = {"reason": move.reason}
    if move.identity is not None:
        updates["identity"] = move.identity.model_dump(mode="json")
    return await write_change(conn, SubjectChange(before=row, at=datetime.now(UTC), state=move.state,
                                                  updates=updates), settings=settings)
