"""`/v1/batches`: OpenAI's Batch API. A batch submits each line of its input file as a job at
bulk priority (in its tenant's fair turn, behind the tenant's interactive jobs, priced with the
price book's batch discount), a window at a time, and survives any restart
(services/ingest/batches/runner.py)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Query

from services.common import problems
from services.common.problems import Problem
from services.ingest.batches import store as batch_store
from services.ingest.batches.models import (
    BATCH_EXAMPLE,
    BATCH_PREFIX,
    FILE_PREFIX,
    Batch,
    BatchPage,
    BatchRequest,
    batch_object,
    internal_id,
)
from services.ingest.batches.store import NewBatch
from services.ingest.deps import BatchRounds, JobsReader, JobsSubmitter, Runtime

router = APIRouter(prefix="/v1/batches", tags=["openai"])
WINDOW = timedelta(hours=24)
BATCH_RESPONSES = problems.responses(400, 404) | {200: {"content": {"application/json": {"example": BATCH_EXAMPLE}}}}


async def shown(runtime: Any, row: dict[str, Any]) -> Batch:
    async with runtime.pool.connection() as conn:
        counts = await batch_store.request_counts(conn, row["id"])
    return batch_object(row, counts)


@router.post("", response_model=Batch, responses=BATCH_RESPONSES)
async def create_batch(body: BatchRequest, caller: JobsSubmitter, runtime: Runtime, rounds: BatchRounds) -> Batch:
    """Run every line of an uploaded file (`POST /v1/files`) as a job; every line must name the
    batch's `endpoint`. The batch is `in_progress` at once (its file was checked when uploaded),
    `completed` when every line's job has ended, with its `output_file_id` and `error_file_id`;
    unfinished after `completion_window` it `expired`, its unfinished jobs canceled. Each line is
    charged once, whatever restarts meanwhile."""
    file_id = internal_id(FILE_PREFIX, body.input_file_id, what="file")
    async with runtime.pool.connection() as conn, conn.transaction():
        file = await batch_store.read_file(conn, file_id, tenant_id=caller.tenant_id)
        if file is None or file["kind"] != "input":
            raise Problem(status=404, slug="file-not-found", detail=f"No such file: {body.input_file_id}",
                          extra={"param": "input_file_id"})
        if file["endpoint"] != body.endpoint:
            raise Problem(status=400, slug="endpoint-mismatch", detail=f"every line of the file must have url {body.endpoint!r}"
                          f" (it names {file['endpoint'] or 'several urls'})", extra={"param": "endpoint"})
        row = await batch_store.insert_batch(conn, NewBatch(
            id=uuid4(), tenant_id=caller.tenant_id, endpoint=body.endpoint, input_file_id=file_id,
            completion_window=body.completion_window, metadata=body.metadata, total=file["lines"],
            expires_at=datetime.now(UTC) + WINDOW, api_key_id=caller.key_id,
            key_caps=caller.caps.model_dump(mode="json")))
    rounds.wake()
    return await shown(runtime, row)


@router.get("", response_model=BatchPage, responses={200: {"content": {"application/json": {"example": {
    "object": "list", "data": [BATCH_EXAMPLE], "first_id": BATCH_EXAMPLE["id"], "last_id": BATCH_EXAMPLE["id"],
    "has_more": False}}}}})
async def list_batches(tenant: JobsReader, runtime: Runtime, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                       after: Annotated[str | None, Query(max_length=64)] = None) -> BatchPage:
    """Your batches, newest first; `after` (a batch id, the page's last) for the next page."""
    try:
        after_id = internal_id(BATCH_PREFIX, after, what="batch") if after else None
    except Problem:
        raise Problem(status=400, slug="invalid-cursor", detail=f"after must be a batch's id (batch_…), not {after!r}",
                      extra={"param": "after"}) from None
    async with runtime.pool.connection() as conn:
        rows = await batch_store.list_batches(conn, tenant, after=after_id, limit=limit + 1)
    data = [await shown(runtime, row) for row in rows[:limit]]
    return BatchPage(data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
                     has_more=len(rows) > limit)


async def tenant_batch(runtime: Any, batch_id: str, *, tenant: str) -> dict[str, Any]:
    async with runtime.pool.connection() as conn:
        row = await batch_store.read_batch(conn, internal_id(BATCH_PREFIX, batch_id, what="batch"), tenant_id=tenant)
    if row is None:
        raise Problem(status=404, slug="batch-not-found", detail=f"No such batch: {batch_id}", extra={"param": "batch_id"})
    return row


@router.get("/{batch_id}", response_model=Batch, responses=BATCH_RESPONSES)
async def get_batch(batch_id: str, tenant: JobsReader, runtime: Runtime) -> Batch:
    """A batch, with its `request_counts`: lines whose job delivered (completed), and lines
    refused or whose job ended without images (failed)."""
    return await shown(runtime, await tenant_batch(runtime, batch_id, tenant=tenant))


@router.post("/{batch_id}/cancel", response_model=Batch, responses=BATCH_RESPONSES | problems.responses(409))
async def cancel_batch(batch_id: str, caller: JobsSubmitter, runtime: Runtime, rounds: BatchRounds) -> Batch:
    """Stop a batch: no more lines are submitted, its unfinished jobs are canceled (`cancelling`),
    then it is `cancelled`, with output and error files of what ended. What was delivered stays
    delivered and charged. A batch that has ended answers 409."""
    row = await tenant_batch(runtime, batch_id, tenant=caller.tenant_id)
    if row["status"] not in ("in_progress", "cancelling", "validating"):
        raise Problem(status=409, slug="batch-ended", detail=f"batch {batch_id} is {row['status']}", extra={"param": "batch_id"})
    async with runtime.pool.connection() as conn:
        await batch_store.set_status(conn, row["id"], status="cancelling", at_column="cancelling_at")
        row = await batch_store.read_batch(conn, row["id"]) or row
    rounds.wake()
    return await shown(runtime, row)
