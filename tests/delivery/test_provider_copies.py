"""Copies of a hosted provider's outputs (`provider-outputs/{job}/…`, kept by the router so
that a resumed call need not fetch again) leave nothing behind, on the running delivery
service: an erased job's copies go with its candidates and images, and the retention sweeper
removes the copies of a job that ended, and of any job once they are a day old."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.common.contracts import JobErased
from services.delivery.retention import RetentionSweeper
from services.router.providers.copies import BucketCopies, CopiedOutput
from services.router.providers.journal import RemoteJobKey
from tests.delivery.test_clip_delivery import (  # noqa: F401  (the fixture)
    clip_with_index_last,
    delivered_of,
    keys_under,
    publish,
    running_delivery,
    selected_clip,
    settings,
)

COPIES = "provider-outputs"


async def copied(objects, job_id: uuid.UUID | str, data: bytes) -> set[str]:
    """A hosted call's output copied as the router copies it; the keys written."""
    key = RemoteJobKey(job_id=str(job_id), attempt=1, capability="generate", provider="fal-hailuo-02", start_index=0, count=1)
    await BucketCopies(objects).put(key, CopiedOutput(12.0, 280_000, ((data, "video/mp4", 7),)))
    return await keys_under(objects, objects.internal_bucket, f"{COPIES}/{job_id}/")


def test_an_erased_job_s_copies_of_hosted_outputs_are_deleted(settings, object_store):  # noqa: F811
    tenant_id = f"tenant-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[set[str], set[str]]:
        async with running_delivery(settings):
            clip = clip_with_index_last(frames=12)
            job_id, _ = await selected_clip(settings, object_store, tenant_id, clip)
            before = await copied(object_store, job_id, clip)
            await delivered_of(settings, job_id)
            await publish(settings, JobErased(job_id=job_id, tenant_id=tenant_id, requested_at=datetime.now(UTC)))
            deadline = asyncio.get_running_loop().time() + 60
            while (left := await keys_under(object_store, object_store.internal_bucket, f"{COPIES}/{job_id}/")) \
                    and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.3)
        return before, left

    before, left = asyncio.run(scenario())
    assert len(before) == 2 and left == set()  # the clip and the manifest that names it, then nothing


def test_the_sweeper_removes_the_copies_of_an_ended_job_and_any_a_day_old(settings, object_store):  # noqa: F811
    tenant_id = f"tenant-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[set[str], set[str], set[str], set[str]]:
        async with running_delivery(settings) as runtime:
            clip = clip_with_index_last(frames=12)
            ended, _ = await selected_clip(settings, object_store, tenant_id, clip)
            running = uuid.uuid4()  # a job delivery has not seen end
            await copied(object_store, ended, clip)
            await copied(object_store, running, clip)
            await delivered_of(settings, ended)
            sweeper, now = RetentionSweeper(runtime, object_store, settings=settings), datetime.now(UTC)
            await sweeper.sweep_once(now)
            of_ended = await keys_under(object_store, object_store.internal_bucket, f"{COPIES}/{ended}/")
            of_running = await keys_under(object_store, object_store.internal_bucket, f"{COPIES}/{running}/")
            await sweeper.sweep_once(now + timedelta(days=1, hours=1))
            later = await keys_under(object_store, object_store.internal_bucket, f"{COPIES}/{running}/")
            candidates = await keys_under(object_store, object_store.internal_bucket, f"candidates/{tenant_id}/")
        return of_ended, of_running, later, candidates

    of_ended, of_running, later, candidates = asyncio.run(scenario())
    assert of_ended == set() and len(of_running) == 2 and later == set()
    assert len(candidates) == 1  # the tenant's own retention (none set) keeps its candidates
