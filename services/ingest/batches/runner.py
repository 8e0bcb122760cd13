"""The batch runner: every replica runs one, and each round leases a batch with work to do
(one replica at a time per batch), submits its next lines as bulk jobs while fewer than its
window are in flight, and records them with the next line to read, in one transaction.

A restart at any point loses nothing and repeats nothing: the lines after the last one
recorded are read again from the object store and submitted again under their own
idempotency keys (`batch:<batch>:<line>`), which answer with the jobs submitted before. Memory
holds one chunk of the file and one window of lines, however many lines the batch has.
A batch whose lines have all ended is completed; one cancelled or past its window has its
unfinished jobs canceled, and ends once they have."""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from services.common.contracts import KeySpendCaps
from services.common.problems import Problem
from services.common.rounds import PeriodicRound
from services.ingest.accounts import Submitter, tenant_plan
from services.ingest.batches import jsonl
from services.ingest.batches import store as batch_store
from services.ingest.batches.lines import line_job, line_key, refused_body
from services.ingest.batches.store import LineRecord, NewFile
from services.ingest.jobs import Change, JobAdmission, read_view, record, request_cancel
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)
# What a round waits before it looks at a batch again: one with lines to submit, at once; one
# waiting for its jobs, a little; a plan's limit or the database away, as long as they say.
AGAIN_S, WAITING_S, REFUSED_S = 0.05, 1.0, 5.0
# Jobs a winding-down batch cancels a round.
CANCELS_A_ROUND = 100
# Batches a round works on, one after another.
BATCHES_A_ROUND = 8


@dataclass(frozen=True)
class Window:
    """The lines of a round: `(line, raw)` read from the batch's file."""

    first: int
    lines: list[tuple[int, bytes]]


class BatchRunner(PeriodicRound):
    """Submits batches' lines as jobs; the app's state gives it what a submission needs."""

    def __init__(self, app: FastAPI, settings: IngestSettings) -> None:
        self.app, self.settings = app, settings
        self.interval_s, self.task_name = settings.batch_interval_s, "ingest-batches"
        self.idle_interval_s = settings.batch_idle_interval_s

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def intake(self) -> JobAdmission:
        state = self.app.state
        return JobAdmission(runtime=state.runtime, settings=self.settings, objects=state.objects, plans=state.plans, gate=state.screening,
                      ledger=getattr(state, "ledger_stub", None), router=getattr(state, "router_stub", None))

    async def sweep_once(self) -> int:
        worked = 0
        for _ in range(BATCHES_A_ROUND):
            async with self.runtime.pool.connection() as conn:
                batch = await batch_store.claim_batch(conn, self.settings.batch_lease_s)
            if batch is None:
                break
            wait_s = WAITING_S
            try:
                wait_s = await self.work(batch)
            finally:
                async with self.runtime.pool.connection() as conn:
                    await batch_store.release_batch(conn, batch["id"], wait_s=wait_s)
            worked += 1
        return worked

    async def next_due_s(self) -> float | None:
        async with self.runtime.pool.connection() as conn:
            return await batch_store.next_due_s(conn)

    async def work(self, batch: dict[str, Any]) -> float:
        """One step of the batch; how long until its next."""
        if batch["status"] == "cancelling":
            return await self.wind_down(batch, "cancelled")
        if batch["expires_at"] <= datetime.now(UTC):
            return await self.wind_down(batch, "expired")
        async with self.runtime.pool.connection() as conn:
            counts = await batch_store.request_counts(conn, batch["id"])
        if batch["next_line"] >= batch["total"]:
            if counts["in_flight"] == 0:
                await self.finish(batch, "completed")
            return WAITING_S
        room = await self.window(batch) - counts["in_flight"]
        if room <= 0:
            return WAITING_S
        window = await self.read(batch, room)
        return await self.submit(batch, window)

    async def window(self, batch: dict[str, Any]) -> int:
        """Jobs of the batch in flight at once: the setting, and half the plan's jobs in progress,
        so the tenant's interactive jobs always find room beside its batches."""
        async with self.runtime.pool.connection() as conn:
            plan_name = await tenant_plan(conn, batch["tenant_id"])
        plan = self.app.state.plans.get(plan_name)
        share = max(1, plan.concurrent_jobs // 2) if plan.concurrent_jobs is not None else self.settings.batch_window
        return min(self.settings.batch_window, share)

    async def read(self, batch: dict[str, Any], room: int) -> Window:
        """Up to `room` lines from the next to submit, within the chunk that holds it."""
        first = batch["next_line"]
        async with self.runtime.pool.connection() as conn:
            chunk = await batch_store.chunk_with_line(conn, batch["input_file_id"], line=first)
        assert chunk is not None, f"batch {batch['id']}: no chunk holds line {first}"
        raw = await jsonl.read_chunk(self.app.state.objects,
                                     jsonl.StoredChunk(batch["tenant_id"], batch["input_file_id"], chunk.chunk))
        start = first - chunk.first_line
        taken = raw[start:start + room]
        return Window(first, [(first + i, line) for i, line in enumerate(taken)])

    async def submit(self, batch: dict[str, Any], window: Window) -> float:
        """Each line of the window as a job (or its refusal), recorded with the next line."""
        records: list[LineRecord] = []
        wait_s = AGAIN_S
        for line, raw in window.lines:
            try:
                records.append(await self.submit_line(batch, line, request=json.loads(raw)))
            except Problem as problem:
                if problem.status in (429, 503):  # a plan's limit or an outage: this line again later
                    wait_s = float(problem.extra.get("retry_after") or REFUSED_S)
                    break
                raise
        async with self.runtime.pool.connection() as conn, conn.transaction():
            await batch_store.record_lines(conn, batch["id"], lines=records, next_line=window.first + len(records))
        return wait_s

    async def submit_line(self, batch: dict[str, Any], line: int, *, request: dict[str, Any]) -> LineRecord:
        tenant, custom_id = batch["tenant_id"], request["custom_id"]
        try:
            body, asked = line_job(request["body"], batch["endpoint"], models=self.app.state.openai_models)
            await self.app.state.prompt_gate.check(self.runtime.pool, tenant, prompt=body.prompt)
            view = await self.intake().submit(body, tenant_id=tenant, idempotency_key=line_key(batch["id"], line),
                                              submitter=submitter_of(batch))
        except Problem as problem:
            if problem.status in (429, 503):
                raise
            status, error = refused_body(problem)
            return LineRecord(line=line, custom_id=custom_id, status_code=status, error=error)
        asked_json = {"response_format": asked.response_format, "quality": asked.quality} if asked else None
        return LineRecord(line=line, custom_id=custom_id, job_id=view.id, asked=asked_json)

    async def wind_down(self, batch: dict[str, Any], status: str) -> float:
        """Cancel the batch's unfinished jobs; once none is left, end the batch as `status`."""
        async with self.runtime.pool.connection() as conn:
            if batch["status"] != "cancelling":
                await batch_store.set_status(conn, batch["id"], status="cancelling", at_column="cancelling_at")
            unfinished = await batch_store.unfinished_jobs(conn, batch["id"], limit=CANCELS_A_ROUND)
        for job_id in unfinished:
            await self.cancel(job_id, batch["tenant_id"], reason=f"its batch was {status}")
        if unfinished:
            self.runtime.relay.notify()
            return WAITING_S
        await self.finish(batch, status)
        return WAITING_S

    async def cancel(self, job_id: uuid.UUID, tenant_id: str, *, reason: str) -> None:
        async with self.runtime.pool.connection() as conn, conn.transaction():
            before = await read_view(conn, job_id, tenant_id=tenant_id, lock=True)
            if before is None or before.final:
                return
            view, event = request_cancel(before, datetime.now(UTC), reason=reason)
            if event is not None:
                await record(conn, Change(before=before, after=view, event=event, at=event.requested_at))
                await self.runtime.emit(conn, event)

    async def finish(self, batch: dict[str, Any], status: str) -> None:
        """The batch ended: its output and error files (made from its lines when read) and its status."""
        files = [NewFile(id=uuid.uuid4(), tenant_id=batch["tenant_id"], purpose="batch_output", kind=kind,
                         filename=f"batch_{batch['id'].hex}_{kind}.jsonl", batch_id=batch["id"])
                 for kind in ("output", "error")]
        async with self.runtime.pool.connection() as conn, conn.transaction():
            for file in files:
                await batch_store.insert_file(conn, file, chunks=[])
            await batch_store.attach_results(conn, batch["id"], output_file_id=files[0].id, error_file_id=files[1].id)
            await batch_store.set_status(conn, batch["id"], status="finalizing", at_column="finalizing_at")
            await batch_store.set_status(conn, batch["id"], status=status, at_column=f"{status}_at")
        log.info("batch %s %s: %d lines", batch["id"], status, batch["total"])


def submitter_of(batch: dict[str, Any]) -> Submitter | None:
    if batch["api_key_id"] is None:
        return None
    return Submitter(batch["api_key_id"], KeySpendCaps.model_validate(batch["key_caps"] or {}))
