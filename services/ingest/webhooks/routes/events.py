"""A job's event log, as a page (`GET /v1/jobs/{id}/events`) or live as Server-Sent Events
(`GET /v1/jobs/{id}/stream`), and all of a tenant's jobs live (`GET /v1/events/stream`).

A job's entries are numbered by `seq` (1, 2, 3 … without gaps), its stream's event ids; the
tenant stream's event ids are `cursor`s that number all of the tenant's entries the same
way. A client that drops resumes with `Last-Event-ID` (or `?after=`) and gets every entry
after it exactly once.
"""

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.common import problems
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest.deps import JobsReader, Runtime, Settings
from services.ingest.jobs import (
    JOB_ID,
    State,
    Watch,
    job_state,
    parse_job_id,
    read_log,
    refuse_missing,
    tenant_log_position,
)

router = APIRouter(tags=["events"])
MAX_SEQ = 2**31 - 1
MAX_CURSOR = 2**63 - 1


class LogEntry(BaseModel):
    seq: int = Field(description="the entry's number within its job: 1, 2, 3 … without gaps")
    type: str = Field(description="`state`, `billing.reserved`, `attempt.started`, `attempt.generated`, `progress`,"
                                  " `attempt.scored`, `delivery.published`, `billing.settled`, `cancel.requested`,"
                                  " `report.refunded` …")
    time: datetime
    payload: dict[str, Any]


class JobEvents(BaseModel):
    job_id: UUID
    state: State
    data: list[LogEntry]
    next: int | None = Field(description="`after` of the next page; null when this page reached the end of the log")


def entry_example(kind: str, second: int, *, payload: dict[str, object]) -> dict[str, object]:
    """A log entry as the examples show it, numbered by its place in the log."""
    return {"type": kind, "time": f"2026-11-02T10:00:0{second}Z", "payload": payload}


EXAMPLE_ENTRIES = [
    entry_example("state", 0, payload={"state": "submitted", "previous": None, "reason": "submitted by the client"}),
    entry_example("billing.reserved", 1, payload={"credits": 10, "unit_price": 10}),
    entry_example("state", 1, payload={"state": "admitted", "previous": "submitted", "reason": "10 credits reserved"}),
    entry_example("attempt.started", 2, payload={"attempt": 1, "images_needed": 1}),
    entry_example("state", 2, payload={"state": "generating", "previous": "admitted", "reason": "attempt 1 started"}),
    entry_example("attempt.generated", 5, payload={"attempt": 1, "candidates": 2, "cost_micro_usd": 4000,
                                           "cost_so_far_micro_usd": 4000, "final": False}),
    entry_example("state", 5, payload={"state": "scoring", "previous": "generating",
                               "reason": "attempt 1 generated 2 candidates"}),
    entry_example("attempt.scored", 7, payload={"attempt": 1, "scored": 2, "passed": 1, "passed_so_far": 1,
                                        "cost_so_far_micro_usd": 4000,
                                        "rejected": [{"index": 1, "failed": ["sharpness", "blank"],
                                                      "not_measured": ["nsfw"]}],
                                        "not_judged": [], "selected": 1}),
    entry_example("state", 7, payload={"state": "delivering", "previous": "scoring", "reason": "1 of 1 images selected"}),
    entry_example("delivery.published", 8, payload={"images": 1, "requested": 1}),
    entry_example("billing.settled", 9, payload={"reserved": 10, "charged": 10, "released": 0, "delivered_images": 1}),
    entry_example("receipt.issued", 9, payload={"url": f"/v1/jobs/{JOB_ID}/receipt",
                                        "sha256": "5d2a6c3e8f1b0a9d7c4e2f6a8b1d3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b3c"}),
    entry_example("state", 9, payload={"state": "succeeded", "previous": "delivering", "reason": "1 of 1 images delivered"}),
]
EVENTS_EXAMPLE = {"job_id": JOB_ID, "state": "succeeded", "next": None,
                  "data": [{"seq": seq} | entry for seq, entry in enumerate(EXAMPLE_ENTRIES, 1)]}
STREAM_EXAMPLE = ('id: 11\nevent: billing.settled\ndata: {"seq": 11, "type": "billing.settled", "time": '
                  '"2026-11-02T10:00:09Z", "payload": {"reserved": 10, "charged": 10, "released": 0}}\n\n'
                  ': ping\n\n')
TENANT_STREAM_EXAMPLE = ('id: 5120\nevent: state\ndata: {"cursor": 5120, "job_id": "' + JOB_ID + '", "seq": 12, '
                         '"type": "state", "time": "2026-11-02T10:00:09Z", "payload": {"state": "succeeded"}}\n\n')


class EventStream(EventSourceResponse):
    media_type = "text/event-stream"  # what the OpenAPI document names instead of JSON


def stream_responses(example: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    return problems.responses(*statuses) | {200: {
        "description": "`text/event-stream`: one event per entry, `id` its number, `event` its type, `data` the"
                       " entry as JSON; a `: ping` comment keeps an idle stream open",
        "content": {"text/event-stream": {"schema": {"type": "string"}, "example": example}}}}


def resume_point(last_event_id: str | None, after: int | None, *, largest: int) -> int | None:
    """Where a stream resumes: `Last-Event-ID` (a reconnecting browser sends it, with the
    URL's first `after` unchanged), else `after`."""
    if last_event_id is None:
        return after
    if not last_event_id.strip().isdigit() or int(last_event_id) > largest:
        raise Problem(status=422, slug="invalid-last-event-id", detail=f"Last-Event-ID {last_event_id!r} is not an event id of this stream")
    return int(last_event_id)


async def owned_state(runtime: ServiceRuntime, job_id: str, *, tenant: str) -> tuple[UUID, str]:
    parsed = parse_job_id(job_id)
    async with runtime.pool.connection() as conn:
        state = await job_state(conn, parsed, tenant_id=tenant)
        if state is None:  # 410 for an erased job; another tenant's is as unknown as one that never existed
            await refuse_missing(conn, job_id, tenant=tenant)
    return parsed, state


@router.get("/v1/jobs/{job_id}/events", response_model=JobEvents,
            responses=problems.responses(404, 410) | {200: {"content": {"application/json": {"example": EVENTS_EXAMPLE}}}})
async def list_job_events(job_id: str, tenant: JobsReader, runtime: Runtime,
                          after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> JobEvents:
    """The job's event log after `seq` `after`, oldest first: each state it entered and why,
    each attempt started and finished, billing, delivery, cancel and reports."""
    parsed, state = await owned_state(runtime, job_id, tenant=tenant)
    async with runtime.pool.connection() as conn:
        rows = await read_log(conn, parsed, after=after, limit=limit + 1)
    entries = [LogEntry(**row) for row in rows[:limit]]
    return JobEvents(job_id=parsed, state=state, data=entries, next=entries[-1].seq if len(rows) > limit else None)


def job_event(row: dict[str, Any]) -> ServerSentEvent:
    body = LogEntry(**row).model_dump(mode="json")
    return ServerSentEvent(id=str(row["seq"]), event=row["type"], data=json.dumps(body))


def tenant_event(row: dict[str, Any]) -> ServerSentEvent:
    body = {"cursor": row["tenant_seq"], "job_id": str(row["job_id"])} | LogEntry(**row).model_dump(mode="json")
    return ServerSentEvent(id=str(row["tenant_seq"]), event=row["type"], data=json.dumps(body))


@router.get("/v1/jobs/{job_id}/stream", response_class=EventStream, responses=stream_responses(STREAM_EXAMPLE, 404, 410, 422))
async def stream_job_events(job_id: str, tenant: JobsReader, runtime: Runtime, settings: Settings, watch: Watch,
                            after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
                            last_event_id: Annotated[str | None, Header(max_length=20)] = None) -> EventStream:
    """The job's event log as Server-Sent Events from after `Last-Event-ID` (or `after`; from
    the start without either), then each entry as it happens; the stream ends after the
    job's final state."""
    parsed, _ = await owned_state(runtime, job_id, tenant=tenant)
    start = resume_point(last_event_id, after, largest=MAX_SEQ) or 0
    rows = watch.job_entries(parsed, tenant, after=start)
    return EventStream((job_event(row) async for row in rows), ping=settings.stream_keepalive_s)


@router.get("/v1/events/stream", response_class=EventStream, responses=stream_responses(TENANT_STREAM_EXAMPLE, 422))
async def stream_tenant_events(tenant: JobsReader, runtime: Runtime, settings: Settings, watch: Watch,
                               after: Annotated[int | None, Query(ge=0, le=MAX_CURSOR)] = None,
                               last_event_id: Annotated[str | None, Header(max_length=20)] = None) -> EventStream:
    """The entries of all your jobs as Server-Sent Events, from now on, or from after the
    `cursor` in `Last-Event-ID` (or `after`; `after=0` is from your first job). Each event's
    id is its `cursor`, which numbers all of your entries 1, 2, 3 … in the order they were
    written; `job_id` and `seq` say whose entry it is. The stream does not end by itself."""
    start = resume_point(last_event_id, after, largest=MAX_CURSOR)
    if start is None:
        async with runtime.pool.connection() as conn:
            start = await tenant_log_position(conn, tenant)
    rows = watch.tenant_entries(tenant, start)
    return EventStream((tenant_event(row) async for row in rows), ping=settings.stream_keepalive_s)
