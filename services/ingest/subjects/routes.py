"""`/v1/subjects`: the people and products a tenant's jobs may be of, made known by photos."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common import problems
from services.common.api import RequestModel, StorableText
from services.common.audit import key_actor
from services.common.contracts import SubjectKind
from services.common.problems import Problem
from services.ingest.deps import JobsReader, JobsSubmitter, Objects, Runtime, Settings
from services.ingest.inputs import MAX_REFERENCE_BASE64, Screening, Sent, read_upload, reference_photo_bytes
from services.ingest.subjects import store as subject_store
from services.ingest.subjects.changes import retention_of
from services.ingest.subjects.domain import PhotoVerdict, Subject
from services.ingest.subjects.examples import (
    PHOTOS_REQUEST_EXAMPLE,
    SUBJECT_EXAMPLE,
    SUBJECT_ID,
    SUBJECT_REQUEST_EXAMPLE,
    VERDICTS_EXAMPLE,
)
from services.ingest.subjects.judging import MAX_PHOTOS
from services.ingest.subjects.lifecycle import NewSubject, Subjects
from services.ingest.subjects.photos import PhotoIntake, PhotoOffer
from services.ingest.subjects.views import decode_cursor, encode_cursor, subject_view

router = APIRouter(prefix="/v1/subjects", tags=["subjects"])
# Photos sent in a request's JSON (base64): each up to the reference photo's size, so a body
# stays bounded; more photos come by upload id.
MAX_JSON_PHOTOS = 10
Base64Photo = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REFERENCE_BASE64)]


class Photos(RequestModel):
    photos: list[Base64Photo] = Field([], max_length=MAX_JSON_PHOTOS,
                                      description=f"base64 JPEG, PNG or WebP photos, at most {MAX_JSON_PHOTOS} a"
                                                  " request")
    uploads: list[Annotated[UUID, Field(strict=False)]] = Field(
        [], max_length=MAX_PHOTOS, description="ids of your uploads (POST /v1/uploads), screened already")


class PhotosRequest(Photos):
    model_config = ConfigDict(json_schema_extra={"examples": [PHOTOS_REQUEST_EXAMPLE]})

    @model_validator(mode="after")
    def some_photo(self) -> "PhotosRequest":
        if not self.photos and not self.uploads:
            raise ValueError("give photos (base64) or uploads (ids), or both")
        return self


class SubjectRequest(Photos):
    model_config = ConfigDict(json_schema_extra={"examples": [SUBJECT_REQUEST_EXAMPLE]})

    kind: SubjectKind = Field(description="a person (faces) or a product")
    name: Annotated[StorableText, StringConstraints(min_length=1, max_length=100)] = Field(
        description="your label for it (shown in the console and webhooks; not a person's personal data)")
    keep: bool = Field(False, description="keep it past the retention (by default it is erased 30 days after its"
                                          " last order)")


class PhotosAdded(BaseModel):
    subject: Subject
    added: list[PhotoVerdict] = Field(description="this request's photos, each with its verdict, in order")


class SubjectPage(BaseModel):
    data: list[Subject] = Field(description="each subject without its photos' verdicts (GET one for them)")
    next: str | None = Field(description="cursor of the next (older) page; null on the last page")


class SubjectErasure(BaseModel):
    id: UUID
    state: str = Field("erased", description="its photos, embeddings and key are gone; its identities are being"
                                             " deleted where they were trained")


def subjects_of(runtime: Runtime, settings: Settings, *, objects: Objects) -> Subjects:
    return Subjects(runtime, settings, objects)


async def sent_photos(body: Photos, tenant: str, *, intake: PhotoIntake) -> list[Sent]:
    """The request's photos: its base64 ones, then its uploads' (the tenant's own only)."""
    sent = [Sent(reference_photo_bytes(photo), f"photos[{i}]") for i, photo in enumerate(body.photos)]
    objects = intake.objects
    async with intake.runtime.pool.connection() as conn:
        for i, upload_id in enumerate(body.uploads):
            upload = await read_upload(conn, upload_id, tenant_id=tenant)
            if upload is None:
                raise Problem(status=422, slug="unknown-upload", detail=f"uploads[{i}]: you have no upload {upload_id}",
                              extra={"field": f"uploads[{i}]"})
            sent.append(Sent(await objects.get(objects.internal_bucket, upload["key"]), f"uploads[{i}]"))
    return sent


def parse_subject_id(subject_id: str) -> UUID:
    try:
        return UUID(subject_id)
    except ValueError:
        raise Problem(status=404, slug="subject-not-found", detail=f"no subject {subject_id!r}") from None


@router.post("", status_code=201, response_model=Subject, responses=problems.responses(413, 422, 503) | {
    201: {"content": {"application/json": {"example": SUBJECT_EXAMPLE}}}})
async def create_subject(body: SubjectRequest, response: Response, caller: JobsSubmitter, runtime: Runtime,
                         settings: Settings, objects: Objects, gate: Screening) -> Subject:
    """Make a subject, a person or a product your jobs may be of (`subject` in POST /v1/jobs),
    and add its first photos (or add them later, POST /v1/subjects/{id}/photos). A subject needs
    4 to 30 accepted photos: it is `screening` until it has 4, then `ready`. Each photo
    is screened like an upload and judged: the catalogue's checks for its kind (a person: one face,
    large enough, sharp, well exposed), at least 256 pixels a side, no repeat of another photo (the
    same file, or a near-duplicate picture), a person's face the same person as in its other photos
    (within 0.6 of their centroid: an odd one out is refused with its distance, wherever it stands),
    a product found and separated from its background. A refused photo is listed with its reasons;
    only accepted photos are kept, sealed with the subject's own key. Unless `keep`, a subject is
    erased 30 days (the platform's retention, or an operator's for your account) after its last
    order."""
    tenant, intake = caller.tenant_id, PhotoIntake(runtime=runtime, settings=settings, objects=objects, gate=gate)
    sent = await sent_photos(body, tenant, intake=intake)
    actor = key_actor(str(caller.key_id))
    subjects = subjects_of(runtime, settings, objects=objects)
    subject_id = await subjects.create(NewSubject(tenant_id=tenant, kind=body.kind, name=body.name, keep=body.keep,
                                                  actor=actor))
    if sent:
        await intake.add(PhotoOffer(tenant_id=tenant, subject_id=subject_id, photos=sent, actor=actor))
    response.headers["Location"] = f"/v1/subjects/{subject_id}"
    return await subjects.view(tenant, subject_id)


@router.post("/{subject_id}/photos", response_model=PhotosAdded,
             responses=problems.responses(404, 409, 410, 413, 422, 503) | {
                 200: {"content": {"application/json": {"example": {"subject": SUBJECT_EXAMPLE,
                                                                    "added": VERDICTS_EXAMPLE[1:]}}}}})
async def add_photos(subject_id: str, body: PhotosRequest, caller: JobsSubmitter, runtime: Runtime,
                     settings: Settings, objects: Objects, gate: Screening) -> PhotosAdded:
    """Add photos to a subject, each judged as POST /v1/subjects says, against the subject's
    accepted photos too; `added` gives this request's verdicts. New photos accepted into a
    trained subject make a new photo set, which a later order trains again (the subject is
    `ready`). A subject being trained takes no photos until its training ends (409)."""
    parsed = parse_subject_id(subject_id)
    subjects = subjects_of(runtime, settings, objects=objects)
    before = len((await subjects.view(caller.tenant_id, parsed)).photos)
    intake = PhotoIntake(runtime=runtime, settings=settings, objects=objects, gate=gate)
    sent = await sent_photos(body, caller.tenant_id, intake=intake)
    await intake.add(PhotoOffer(tenant_id=caller.tenant_id, subject_id=parsed, photos=sent, actor=key_actor(str(caller.key_id))))
    subject = await subjects.view(caller.tenant_id, parsed)
    return PhotosAdded(subject=subject, added=[p for p in subject.photos if p.n > before][:len(sent)])


@router.get("", response_model=SubjectPage, responses=problems.responses(422) | {200: {"content": {"application/json": {
    "example": {"data": [SUBJECT_EXAMPLE | {"photos": []}], "next": None}}}}})
async def list_subjects(tenant: JobsReader, runtime: Runtime, settings: Settings,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20,
                        cursor: Annotated[str | None, Query(max_length=200)] = None) -> SubjectPage:
    """Your subjects (erased ones aside), newest first, `limit` per page: each without its
    photos (`photos` is empty; GET /v1/subjects/{id} has them), but with the checks they waive."""
    before = decode_cursor(cursor) if cursor else None
    async with runtime.pool.connection() as conn:
        rows = await subject_store.list_subjects(conn, subject_store.SubjectRows(tenant_id=tenant, limit=limit + 1,
                                                                                 before=before))
        retention = await retention_of(conn, tenant, settings=settings)
        judged = await subject_store.accepted_verdicts(conn, [row["id"] for row in rows[:limit]])
    page = [subject_view(row, [], retention=retention, judged=judged.get(row["id"], [])) for row in rows[:limit]]
    return SubjectPage(data=page, next=encode_cursor(rows[limit - 1]) if len(rows) > limit else None)


@router.get("/{subject_id}", response_model=Subject, responses=problems.responses(404, 410) | {
    200: {"content": {"application/json": {"example": SUBJECT_EXAMPLE}}}})
async def get_subject(subject_id: str, tenant: JobsReader, runtime: Runtime, settings: Settings,
                      objects: Objects) -> Subject:
    """A subject with every photo's verdict (never a photo: they are kept sealed for your
    jobs only). Another tenant's subject is as unknown as none (404); an erased one answers 410."""
    return await subjects_of(runtime, settings, objects=objects).view(tenant, parse_subject_id(subject_id))


@router.delete("/{subject_id}", status_code=202, response_model=SubjectErasure,
               responses=problems.responses(404, 410) | {
                   202: {"content": {"application/json": {"example": {"id": SUBJECT_ID, "state": "erased"}}}}})
async def erase_subject(subject_id: str, caller: JobsSubmitter, runtime: Runtime, settings: Settings,
                        objects: Objects) -> SubjectErasure:
    """Erase a subject: its photos, their face embeddings and its centroid are gone at once
    (the key they were sealed with is destroyed), and every identity trained from it is deleted:
    its weights in the platform's bucket and, where the provider's API can, at the provider.
    Jobs made of it keep their delivered images; new jobs cannot name it. It answers 410 from
    then on."""
    parsed = parse_subject_id(subject_id)
    await subjects_of(runtime, settings, objects=objects).erase(caller.tenant_id, parsed, actor=key_actor(str(caller.key_id)))
    return SubjectErasure(id=parsed)
