"""Files and batches as OpenAI's Files and Batch APIs show them, and the requests that make a
batch; ids are OpenAI-like (`file-…`, `batch_…`) over Genline's UUIDs. Without I/O."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.common.api import RequestModel
from services.common.problems import Problem
from services.ingest.batches.jsonl import ENDPOINTS

FILE_PREFIX, BATCH_PREFIX = "file-", "batch_"
Endpoint = Literal["/v1/images/generations", "/v1/jobs"]
assert set(ENDPOINTS) == {"/v1/images/generations", "/v1/jobs"}
Status = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
                 "cancelled"]
FILE_EXAMPLE: dict[str, Any] = {"id": "file-5b0e6c1a7d2f4e8b9a3c1f2e3d4c5b6a", "object": "file", "bytes": 1840, "created_at": 1795000000,
                "filename": "catalogue.jsonl", "purpose": "batch", "status": "processed", "expires_at": None}
BATCH_EXAMPLE: dict[str, Any] = {
    "id": "batch_0b7e6a528a8f4a4e9c473f0d2a1c9b11", "object": "batch", "endpoint": "/v1/images/generations",
    "errors": None, "input_file_id": "file-5b0e6c1a7d2f4e8b9a3c1f2e3d4c5b6a", "completion_window": "24h",
    "status": "in_progress", "output_file_id": None, "error_file_id": None, "created_at": 1795000000,
    "in_progress_at": 1795000000, "expires_at": 1795086400, "request_counts": {"total": 1000, "completed": 412,
                                                                                 "failed": 3},
    "metadata": {"catalogue": "spring"}}


def external_id(prefix: str, value: UUID) -> str:
    return f"{prefix}{value.hex}"


def internal_id(prefix: str, value: str, *, what: str) -> UUID:
    """The UUID behind an OpenAI-like id; 404 for one that names nothing."""
    try:
        if value.startswith(prefix):
            return UUID(hex=value[len(prefix):])
    except ValueError:
        pass
    raise Problem(status=404, slug=f"{what}-not-found", detail=f"No such {what}: {value}", extra={"param": f"{what}_id"})


def epoch(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when else None


class FileObject(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [FILE_EXAMPLE]})

    id: str
    object: Literal["file"] = "file"
    bytes: int = Field(description="the input's size; 0 for an output or error file, made when it is read")
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None
    lines: int = Field(description="extension: lines in the file (an output or error file: 0)")


def file_object(row: dict[str, Any]) -> FileObject:
    return FileObject(id=external_id(FILE_PREFIX, row["id"]), bytes=row["bytes"], created_at=epoch(row["created_at"]),
                      filename=row["filename"], purpose=row["purpose"], expires_at=epoch(row["expires_at"]),
                      lines=row["lines"])


class DeletedFile(BaseModel):
    """What OpenAI's `files.delete` answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": FILE_EXAMPLE["id"], "object": "file", "deleted": True}]})

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class Batch(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_EXAMPLE]})

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: Status
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, str] | None = None


def batch_object(row: dict[str, Any], counts: dict[str, int]) -> Batch:
    def file_id(value: UUID | None) -> str | None:
        return external_id(FILE_PREFIX, value) if value else None

    times = {name: epoch(row[name]) for name in ("in_progress_at", "expires_at", "finalizing_at", "completed_at",
                                                 "failed_at", "expired_at", "cancelling_at", "cancelled_at")}
    return Batch(id=external_id(BATCH_PREFIX, row["id"]), endpoint=row["endpoint"],
                 input_file_id=external_id(FILE_PREFIX, row["input_file_id"]),
                 completion_window=row["completion_window"], status=row["status"],
                 output_file_id=file_id(row["output_file_id"]), error_file_id=file_id(row["error_file_id"]),
                 created_at=epoch(row["created_at"]) or 0, **times, metadata=row["metadata"],
                 request_counts=RequestCounts(total=row["total"], completed=counts["completed"],
                                              failed=counts["failed"] + never_run(row)))


def never_run(row: dict[str, Any]) -> int:
    """Lines a batch ended (cancelled, expired) before submitting: failed, each in its error file."""
    return row["total"] - row["next_line"] if row["status"] in ("cancelled", "expired") else 0


class BatchPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool


class OutputExpiry(RequestModel):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class BatchRequest(RequestModel):
    """`POST /v1/batches`, as OpenAI's Batch API takes it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "input_file_id": "file-5b0e6c1a7d2f4e8b9a3c1f2e3d4c5b6a", "endpoint": "/v1/images/generations",
        "completion_window": "24h", "metadata": {"catalogue": "spring"}}]})

    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: Endpoint = Field(description="the url every line of the file names")
    completion_window: Literal["24h"] = Field(description="the batch expires, its unfinished jobs canceled, after it")
    metadata: dict[str, str] | None = Field(None, max_length=16)
    output_expires_after: OutputExpiry | None = Field(None, description="accepted; files are kept with the batch")
