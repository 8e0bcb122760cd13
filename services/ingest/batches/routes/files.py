"""`/v1/files`: batch input files as OpenAI's Files API takes them (purpose `batch`, JSONL),
checked line by line and kept in the object store in chunks; and every file's content,
streamed: an input as uploaded, a batch's output and error files made from its lines."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from services.common import problems
from services.common.problems import Problem
from services.ingest.batches import jsonl, multipart
from services.ingest.batches import store as batch_store
from services.ingest.batches.models import (
    BATCH_PREFIX,
    FILE_EXAMPLE,
    FILE_PREFIX,
    DeletedFile,
    FileObject,
    external_id,
    file_object,
    internal_id,
)
from services.ingest.batches.results import Contents
from services.ingest.batches.store import NewFile
from services.ingest.compat import Pictures
from services.ingest.deps import JobsReader, JobsWriter, Objects, Runtime, Settings

router = APIRouter(prefix="/v1/files", tags=["openai"])
FORM_OVERHEAD = 64 * 1024
FILE_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "JSONL: one request a line"},
        "purpose": {"type": "string", "enum": ["batch"]},
        "expires_after[anchor]": {"type": "string"}, "expires_after[seconds]": {"type": "integer"}}}}}}}
FILE_RESPONSES = problems.responses(400, 404, 413) | {200: {"content": {"application/json": {"example": FILE_EXAMPLE}}}}


def limits_of(settings: Any) -> jsonl.FileLimits:
    return jsonl.FileLimits(max_bytes=settings.batch_file_max_bytes, max_lines=settings.batch_max_lines, max_line_bytes=settings.batch_line_max_bytes,
                            chunk_bytes=settings.batch_chunk_bytes)


def expiry(form: dict[str, str]) -> datetime | None:
    seconds = form.get("expires_after[seconds]")
    if seconds is None:
        return None
    if not str(seconds).isdigit() or not 3600 <= int(seconds) <= 2_592_000:
        raise Problem(status=400, slug="invalid-value", detail="expires_after[seconds] must be from 3600 to 2592000",
                      extra={"param": "expires_after"})
    return datetime.now(UTC) + timedelta(seconds=int(seconds))


@router.post("", response_model=FileObject, openapi_extra=FILE_FORM, responses=FILE_RESPONSES)
async def create_file(request: Request, tenant: JobsWriter, runtime: Runtime, settings: Settings,
                      objects: Objects) -> FileObject:
    """Upload a batch's input (multipart: `file` and `purpose` = `batch`), as OpenAI's
    `files.create` sends it: JSONL, a request a line (`custom_id` unique in the file, `method`
    POST, `url` /v1/images/generations or /v1/jobs, `body`), at most GENLINE_BATCH_MAX_LINES lines
    and GENLINE_BATCH_FILE_MAX_BYTES bytes. Every line is checked as it is read and the file is
    written to storage a chunk at a time, never held whole; the first bad line refuses the file
    (400 naming it), and nothing is kept."""
    limits = limits_of(settings)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise Problem(status=400, slug="length-required", detail="send the file with a Content-Length", extra={"param": "file"})
    if int(declared) > limits.max_bytes + FORM_OVERHEAD:
        raise Problem(status=413, slug="batch-file-too-large", detail=f"a batch file may hold at most {limits.max_bytes} bytes",
                      extra={"param": "file"})
    form = multipart.FileForm(file_field="file", fields={})
    file_id = uuid4()
    events = multipart.form_events(multipart.capped(request.stream(), limits.max_bytes + FORM_OVERHEAD),
                                   multipart.boundary_of(request.headers.get("content-type", "")))
    received = await jsonl.spool_file(multipart.file_pieces(events, form),
                                      jsonl.Spooler(objects=objects, tenant_id=tenant, file_id=file_id, chunk_bytes=limits.chunk_bytes), limits=limits)
    if form.fields.get("purpose") != "batch":
        await jsonl.Spooler(objects=objects, tenant_id=tenant, file_id=file_id, chunk_bytes=limits.chunk_bytes, chunks=received.chunks).discard()
        raise Problem(status=400, slug="invalid-purpose", detail="only purpose 'batch' is accepted", extra={"param": "purpose"})
    stored = NewFile(id=file_id, tenant_id=tenant, purpose="batch", kind="input",
                     filename=(form.filename or "batch.jsonl")[:255], bytes=received.bytes, lines=received.lines,
                     endpoint=received.endpoint, expires_at=expiry(form.fields))
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await batch_store.insert_file(conn, stored, chunks=received.chunks)
    return file_object(row)


async def tenant_file(runtime: Any, file_id: str, *, tenant: str) -> dict[str, Any]:
    async with runtime.pool.connection() as conn:
        row = await batch_store.read_file(conn, internal_id(FILE_PREFIX, file_id, what="file"), tenant_id=tenant)
    if row is None:
        raise Problem(status=404, slug="file-not-found", detail=f"No such file: {file_id}", extra={"param": "file_id"})
    return row


@router.get("/{file_id}", response_model=FileObject, responses=FILE_RESPONSES)
async def get_file(file_id: str, tenant: JobsReader, runtime: Runtime) -> FileObject:
    """A file of yours: an input you uploaded, or a batch's output or error file."""
    return file_object(await tenant_file(runtime, file_id, tenant=tenant))


@router.delete("/{file_id}", response_model=DeletedFile, responses=problems.responses(404, 409))
async def delete_file(file_id: str, tenant: JobsWriter, runtime: Runtime, settings: Settings,
                      objects: Objects) -> DeletedFile:
    """Delete a file of yours, as OpenAI's `files.delete` does: an input file (its stored lines
    with it), or a batch's output or error file; it is gone from `GET /v1/files/{file_id}`, while
    a batch keeps naming it. An input file a batch still reads (one that has not ended) is
    refused (409 `file-in-use`, naming the batch): cancel the batch, or wait for it to end."""
    file = await tenant_file(runtime, file_id, tenant=tenant)
    async with runtime.pool.connection() as conn, conn.transaction():
        reading = await batch_store.batch_reading(conn, file["id"])
        if reading is not None:
            batch = external_id(BATCH_PREFIX, reading)
            raise Problem(status=409, slug="file-in-use", detail=f"batch {batch} still reads file {file_id}: cancel it or wait for it to"
                          " end", extra={"param": "file_id", "batch_id": batch})
        chunks = await batch_store.delete_file(conn, file["id"], tenant_id=tenant)
    if chunks is None:
        raise Problem(status=404, slug="file-not-found", detail=f"No such file: {file_id}", extra={"param": "file_id"})
    await jsonl.Spooler(objects=objects, tenant_id=tenant, file_id=file["id"], chunk_bytes=settings.batch_chunk_bytes, chunks=chunks).discard()
    return DeletedFile(id=file_id)


@router.get("/{file_id}/content", response_class=StreamingResponse, responses=problems.responses(404) | {
    200: {"content": {"application/jsonl": {"schema": {"type": "string"}, "example":
          '{"id":"batch_req_0","custom_id":"sku-1","response":{"status_code":200,"request_id":"…","body":{}},'
          '"error":null}\n'}}}})
async def get_file_content(file_id: str, tenant: JobsReader, runtime: Runtime, settings: Settings,
                           objects: Objects) -> StreamingResponse:
    """The file's lines, streamed: an input as uploaded; a batch's output file (a line per
    request whose job delivered: its `custom_id` and the answer its url gives, links signed now)
    or error file (a line per request refused, or whose job ended without images, with the
    error OpenAI's API would give)."""
    file = await tenant_file(runtime, file_id, tenant=tenant)
    contents = Contents(runtime, Pictures(objects, settings.link_ttl_s))
    lines = contents.input(file) if file["kind"] == "input" else contents.results(file)
    return StreamingResponse(lines, media_type=jsonl.JSONL)
