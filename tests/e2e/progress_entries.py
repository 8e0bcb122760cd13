"""`progress` entries written into a job's event log through ingest's own store, as ingest
writes them when candidates are stored or scored, so that the clients read them through
the real API and its streams."""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from genline_stack.fleet import ServiceFleet
from services.ingest.jobs import store
from services.ingest.jobs.job_log import NewEntry


def progress(job_id: str, *, candidates: int, generated: int, scored: int, passing: int, images: int,
             eta_s: float | None, previews: tuple[int, ...] = ()) -> dict:
    """A progress entry's payload, in the shape ingest gives it."""
    return {"candidates": candidates, "generated": generated, "scored": scored, "passing": passing, "images": images,
            "needed": max(0, images - passing), "eta_s": eta_s,
            "previews": [{"index": i, "url": f"/v1/jobs/{job_id}/candidates/{i}/image"} for i in previews]}


def append_progress(platform: ServiceFleet, job_id: str, *payloads: dict) -> None:
    """Append one `progress` entry per payload to the job's log, numbered after its last
    entry, and wake the streams following it (from a thread without an event loop)."""
    asyncio.run(_append(platform, UUID(job_id), payloads))


async def _append(platform: ServiceFleet, job_id: UUID, payloads: tuple[dict, ...]) -> None:
    async with await psycopg.AsyncConnection.connect(platform.endpoints.database_url, row_factory=dict_row) as conn:
        await conn.execute(f'SET search_path TO "{platform.schema("ingest")}"')
        async with conn.transaction():
            view = await store.read_view(conn, job_id, lock=True)
            assert view is not None, f"no job {job_id}"
            now = datetime.now(UTC)
            await store.append_log(conn, [(view, NewEntry(type="progress", time=now, payload=p)) for p in payloads])
