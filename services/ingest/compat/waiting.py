"""An OpenAI-compatible call waits for its job: until the job is final (the ledger has
settled it, so the answer says what it cost) or the call's wait is over; then its images as
the call asked for them, links or base64."""

import asyncio
import time
from dataclasses import dataclass
from uuid import UUID

from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.ingest.compat.images import ImageData, as_b64
from services.ingest.jobs import JobView, LogWatch, read_view

# How often a waiting call looks at its job besides when the job's log wakes it.
LOOK_EVERY_S = 1.0


@dataclass(frozen=True)
class Waiter:
    """What a call waits with: the service's runtime, the log's notifications and how long."""

    runtime: ServiceRuntime
    watch: LogWatch
    wait_s: float

    async def final_view(self, first: JobView) -> tuple[JobView, float]:
        """The job once final, else as it stands when the wait is over; and the seconds waited."""
        started, view = time.monotonic(), first
        with self.watch.watching(first.tenant_id) as woken:
            while not view.final:
                left = self.wait_s - (time.monotonic() - started)
                if left <= 0:
                    break
                woken.clear()
                view = await self.read(first.id, first.tenant_id) or view
                if not view.final:
                    try:
                        await asyncio.wait_for(woken.wait(), min(left, LOOK_EVERY_S))
                    except TimeoutError:
                        pass
        return view, time.monotonic() - started

    async def read(self, job_id: UUID, tenant_id: str) -> JobView | None:
        async with self.runtime.pool.connection() as conn:
            return await read_view(conn, job_id, tenant_id=tenant_id)


@dataclass(frozen=True)
class Pictures:
    """A final job's images as the call asked for them."""

    objects: ObjectStore
    link_ttl_s: int

    async def data(self, view: JobView, response_format: str) -> list[ImageData]:
        if response_format == "url":
            return [ImageData(url=self.objects.presign_get(self.objects.public_bucket, o.key, ttl_s=self.link_ttl_s))
                    for o in view.outputs]
        return [ImageData(b64_json=as_b64(await self.objects.get(self.objects.public_bucket, o.key)))
                for o in view.outputs]
