"""Photos added to a subject: each file screened like an upload (type, structure, size,
metadata stripped), measured by the scorer (the catalogue's checks for the subject's kind, and
what the photo shows: faces and embedding, or a product's foreground), judged against the
subject's photos (`judging.py`) under the subject's row lock, and, when accepted, stored sealed
with the subject's data key. Every photo gets its verdict; a subject that reaches MIN_PHOTOS
accepted photos is `ready` (SubjectChanged)."""

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.common.audit import Action, record_action
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.common.sealing import SubjectField, seal_bytes
from services.common.storage import Blob, ObjectStore
from services.common.templates import load_catalogue
from services.ingest import data_keys
from services.ingest.inputs import ScreenedImage, ScreeningGate, ScreeningLimits, Sent, SubjectQuestion, measure_subject
from services.ingest.key_encryption import keyring_of
from services.ingest.settings import IngestSettings
from services.ingest.subjects import judging, store, views
from services.ingest.subjects.changes import SubjectChange, write_change
from services.ingest.subjects.domain import photo_set_sha256, state_after_photos


@dataclass(frozen=True)
class Screened:
    """A photo offered, after screening: the clean image, or why screening refused the file."""

    sent: Sent
    image: ScreenedImage | None = None
    refused: str | None = None


@dataclass(frozen=True, kw_only=True)
class PhotoOffer:
    """Photos a request offers a subject, and who offers them (for the audit trail)."""

    tenant_id: str
    subject_id: UUID
    photos: Sequence[Sent]
    actor: str


@dataclass(frozen=True, kw_only=True)
class PhotoIntake:
    runtime: ServiceRuntime
    settings: IngestSettings
    objects: ObjectStore
    gate: ScreeningGate

    async def add(self, offer: PhotoOffer) -> None:
        """Screen, measure, judge and keep the offered photos (raises the problem of a subject
        that cannot take photos now)."""
        async with self.runtime.pool.connection() as conn:
            row = await store.read_subject(conn, offer.subject_id, tenant_id=offer.tenant_id)
            refuse_unwilling(row, offer.subject_id)
            assert row is not None
            key = await data_keys.key_of(conn, offer.subject_id, keyring=keyring_of(self.settings))
        assert key is not None, "a subject that is not erased has its data key"
        screened = [await self.screened(sent) for sent in offer.photos]
        offered = await self.measured(row["kind"], screened)
        async with self.runtime.pool.connection() as conn, conn.transaction():
            row = await store.read_subject(conn, offer.subject_id, tenant_id=offer.tenant_id, lock=True)
            refuse_unwilling(row, offer.subject_id)
            assert row is not None
            await self.keep(conn, Judging(row=row, key=key, screened=screened, offered=offered), actor=offer.actor)
        self.runtime.relay.notify()

    async def screened(self, sent: Sent) -> Screened:
        limits = ScreeningLimits(self.settings.max_upload_bytes, self.settings.max_reference_pixels)
        try:
            return Screened(sent, await self.gate.screen(sent.data, limits, name=sent.name))
        except Problem as problem:
            if problem.status == 503:  # no room to decode now: the whole request comes back later
                raise
            return Screened(sent, refused=problem.detail)

    async def measured(self, kind: str, screened: list[Screened]) -> list[judging.Offered]:
        checks = load_catalogue().subject_checks(kind)
        question = SubjectQuestion(kind, tuple(checks) or ("sharpness",))
        room = asyncio.Semaphore(self.settings.subject_screening_concurrency)

        async def one(photo: Screened) -> judging.Offered:
            if photo.image is None:
                return judging.Offered(sha256=hashlib.sha256(photo.sent.data).hexdigest(), source=photo.sent.name,
                                       refused=photo.refused)
            async with room:
                answer = await measure_subject(self.settings, photo.image.data, question=question)
            return judging.Offered(sha256=photo.image.sha256, source=photo.sent.name, measured=measured_of(answer))

        return list(await asyncio.gather(*(one(photo) for photo in screened)))

    async def keep(self, conn: Any, judging_: "Judging", *, actor: str) -> None:
        row, key = judging_.row, judging_.key
        subject_id = row["id"]
        before = await store.subject_photos(conn, subject_id)
        accepted_before = [p for p in before if p["accepted"]]
        batch = judging.JudgedAgainst(kind=row["kind"], checks=load_catalogue().subject_checks(row["kind"]),
                                      kept=[views.kept_photo(key, p) for p in accepted_before],
                                      last_n=max((p["n"] for p in before), default=0))
        verdicts = judging.judged(batch, judging_.offered)
        rows = [await self.photo_row(judging_, verdict, image=shot.image) for verdict, shot in zip(verdicts, judging_.screened)]
        await store.insert_photos(conn, rows)
        accepted = [p["sha256"] for p in accepted_before] + [r.sha256 for r in rows if r.object_key]
        photo_set = photo_set_sha256(accepted)
        embeddings = [k.embedding for k in batch.kept if k.embedding] + [
            v.offered.measured.embedding for v in verdicts
            if v.accepted and v.offered.measured is not None and v.offered.measured.embedding]
        state = state_after_photos(row["state"], len(accepted), photo_set_changed=photo_set != row["photo_set_sha256"])
        updates = {"photo_set_sha256": photo_set,
                   "centroid": views.sealed_centroid(key, subject_id, centroid=judging.centroid_of(embeddings))}
        changed = await write_change(conn, SubjectChange(before=row, at=datetime.now(UTC), state=state,
                                                         updates=updates), settings=self.settings)
        if changed is not None:
            await self.runtime.emit(conn, changed)
        await record_action(self.runtime, conn, action=Action(actor=actor, name="subject.photos_add", target=f"subject:{subject_id}",
                                                       tenant_id=row["tenant_id"], details={
                                                           "accepted": sum(v.accepted for v in verdicts),
                                                           "refused": sum(not v.accepted for v in verdicts)}))

    async def photo_row(self, judging_: "Judging", verdict: judging.PhotoJudgement,
                        *, image: ScreenedImage | None) -> store.PhotoRow:
        """The photo's row; an accepted photo is stored sealed first."""
        row, key = judging_.row, judging_.key
        subject_id, measured = row["id"], verdict.offered.measured
        base = store.PhotoRow(subject_id=subject_id, n=verdict.n, sha256=verdict.offered.sha256,
                              verdict=verdict.as_json(), width=measured.width if measured else None,
                              height=measured.height if measured else None)
        if not verdict.accepted or image is None or measured is None:
            return base
        object_key = views.photo_key(row["tenant_id"], subject_id, sha256=image.sha256)
        sealed = seal_bytes(key, SubjectField(subject_id, f"photo/{image.sha256}"), data=image.data)
        await self.objects.put(self.objects.internal_bucket, object_key, content=Blob(sealed, "application/octet-stream"))
        embedding = (views.sealed_embedding(key, views.embedding_field(subject_id, image.sha256), embedding=measured.embedding)
                     if measured.embedding else None)
        return store.PhotoRow(subject_id=subject_id, n=verdict.n, sha256=image.sha256, verdict=verdict.as_json(),
                              object_key=object_key, media_type=image.media_type, width=image.width,
                              height=image.height, fingerprint=measured.fingerprint, embedding=embedding)


@dataclass(frozen=True, kw_only=True)
class Judging:
    """A batch being judged: the subject's row (held), its key, the photos as screened and as
    offered to the judge."""

    row: dict[str, Any]
    key: bytes
    screened: list[Screened]
    offered: list[judging.Offered]


def measured_of(answer: dict[str, Any]) -> judging.PhotoMeasures:
    shown = answer["subject"]
    embedding = shown.get("embedding")
    return judging.PhotoMeasures(values=answer["values"], width=shown["width"], height=shown["height"],
                            fingerprint=shown["fingerprint"], embedding=tuple(embedding) if embedding else None,
                            foreground=shown.get("foreground"), eyes=shown.get("eyes"))


def refuse_unwilling(row: dict[str, Any] | None, subject_id: UUID) -> None:
    """404 for a subject the tenant does not have, 410 once erased, 409 while it is trained."""
    if row is None:
        raise Problem(status=404, slug="subject-not-found", detail=f"no subject {subject_id}")
    if row["state"] == "erased":
        raise Problem(status=410, slug="subject-erased", detail=f"subject {subject_id} was erased")
    if row["state"] == "training":
        raise Problem(status=409, slug="subject-training", detail=f"subject {subject_id} is being trained from its photos; add photos"
                      " once its training has ended", extra={"state": row["state"]})
