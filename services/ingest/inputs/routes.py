"""`/v1/uploads`: input photos for later jobs, screened before anything is stored."""

from datetime import datetime
from email import policy
from email.parser import BytesParser
from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from services.common import problems
from services.common.problems import Problem
from services.ingest.deps import JobsReader, JobsWriter, Objects, Runtime, Settings, read_capped
from services.ingest.inputs.screening import Screening, ScreeningLimits
from services.ingest.inputs.store import NewUpload, insert_upload, read_upload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

# A multipart body carries boundaries and part headers around the file.
MULTIPART_OVERHEAD = 64 * 1024
BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "image/jpeg": BINARY, "image/png": BINARY, "image/webp": BINARY, "application/octet-stream": BINARY,
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}}
UPLOAD_ID = "5b0e6c1a-7d2f-4e8b-9a3c-1f2e3d4c5b6a"
UPLOAD_EXAMPLE = {"id": UPLOAD_ID, "media_type": "image/jpeg", "width": 512, "height": 512, "size_bytes": 48213,
                  "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                  "created_at": "2026-11-02T10:00:00Z", "url": f"/v1/uploads/{UPLOAD_ID}"}


class Upload(BaseModel):
    """A screened photo, stored upright and without metadata; jobs name it by `id`."""

    id: UUID
    media_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    created_at: datetime
    url: str


async def capped_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as its declared or its read length passes `limit`."""
    return await read_capped(request, limit, refused=lambda size: too_large(size, limit))


def too_large(size: int, limit: int) -> Problem:
    return Problem(status=413, slug="image-too-large", detail=f"the upload is {size} bytes or more; at most {limit} are accepted",
                   extra={"reason": "bytes", "limit": limit})


def file_part(body: bytes, content_type: str) -> bytes:
    """The bytes of the part named `file` of a multipart/form-data body."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    parts = message.iter_parts() if message.is_multipart() else []
    for part in parts:
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)  # bytes, or None when the part holds none
            return payload if isinstance(payload, bytes) else b""
    raise Problem(status=422, slug="missing-file-part", detail="a multipart upload needs a part named 'file' holding the photo")


async def received_photo(request: Request, max_bytes: int) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/"):
        body = await capped_body(request, max_bytes + MULTIPART_OVERHEAD)
        return file_part(body, content_type)
    return await capped_body(request, max_bytes)


def as_upload(row: dict[str, Any]) -> Upload:
    return Upload(**{k: row[k] for k in ("id", "media_type", "width", "height", "size_bytes", "sha256",
                                          "created_at")}, url=f"/v1/uploads/{row['id']}")


@router.post("", status_code=201, response_model=Upload, openapi_extra=UPLOAD_BODY,
             responses=problems.responses(413, 415, 422, 503) | {
                 201: {"content": {"application/json": {"example": UPLOAD_EXAMPLE}}}})
async def create_upload(request: Request, response: Response, tenant: JobsWriter, runtime: Runtime,
                        settings: Settings, objects: Objects, gate: Screening) -> Upload:
    """Upload a JPEG, PNG or WebP photo (the raw body, or a multipart part named `file`) for
    later jobs (`input_upload`). The type is read from the content, never from a name or a
    header; too many bytes (413), too many pixels or a decompression bomb (413), another type
    (415), a truncated or corrupt file or one that is also something else (422) are refused
    with the reason, and nothing is stored. What is kept is upright (EXIF orientation
    applied) and carries no metadata (EXIF, GPS, XMP, ICC)."""
    data = await received_photo(request, settings.max_upload_bytes)
    limits = ScreeningLimits(settings.max_upload_bytes, settings.max_reference_pixels)
    photo = await gate.screen(data, limits, name="the upload")
    upload = NewUpload(uuid4(), tenant, photo)
    await objects.put(objects.internal_bucket, upload.key, content=photo)
    async with runtime.pool.connection() as conn:
        row = await insert_upload(conn, upload)
    response.headers["Location"] = f"/v1/uploads/{upload.id}"
    return as_upload(row)


def parse_upload_id(upload_id: str) -> UUID:
    try:
        return UUID(upload_id)
    except ValueError:
        raise Problem(status=404, slug="upload-not-found", detail=f"no upload {upload_id!r}") from None


@router.get("/{upload_id}", response_model=Upload,
            responses=problems.responses(404) | {200: {"content": {"application/json": {"example": UPLOAD_EXAMPLE}}}})
async def get_upload(upload_id: str, tenant: JobsReader, runtime: Runtime) -> Upload:
    """An upload's screened properties; another tenant's upload is as unknown as none."""
    async with runtime.pool.connection() as conn:
        row = await read_upload(conn, parse_upload_id(upload_id), tenant_id=tenant)
    if row is None:
        raise Problem(status=404, slug="upload-not-found", detail=f"no upload {upload_id!r}")
    return as_upload(row)
