"""The retention sweeper: each tenant's images are kept as long as its retention says.

Every `retention_sweep_interval_s` one delivery replica (the one holding a transaction-level
advisory lock) goes through the tenants with a retention and deletes
1. outputs (public bucket, `{tenant}/…`, thumbnails included) older than `outputs_days`;
2. candidates (internal bucket, `candidates/{tenant}/…`) older than `candidates_days` when
   they were delivered, and older than that or the audit period, whichever is longer, when
   they were not: a rejected candidate is what an auditor asks about.

Whatever the tenants' retention, the router's copies of hosted providers' outputs
(`provider-outputs/{job}/…`, duplicates kept only so that a resumed call need not fetch again)
go once their job has ended here (delivered, failed or canceled), and any of them once it is
`provider_copies_hours` old (a job that ended elsewhere, or never).

An attempt's candidates are one object (`storage.attempt_key`), most often delivered and
rejected ones together. Past `candidates_days` the delivered ones in it are blanked: the
object is written again with their bytes zeroed (their digests then no longer match, and
ingest answers 410 for them), and `blanked_sources` notes when it was first written, from
which its audit period still counts. The object goes once its audit period (or, when all
it holds was delivered, `candidates_days`) has passed. A crash between the write and the
commit only keeps the object longer: its next blanking counts from the new write.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.db import Conn
from services.common.rounds import PeriodicRound, exclusive_round
from services.common.runtime import ServiceRuntime
from services.common.storage import (
    ATTEMPT_MEDIA_TYPE,
    Blob,
    ListedObject,
    ObjectStore,
    holds_candidates,
    job_of_copy,
    provider_copies_prefix,
)
from services.delivery import store
from services.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)


def expired(objects: list[ListedObject], older_than: datetime) -> list[str]:
    return [obj.key for obj in objects if obj.last_modified < older_than]


class RetentionSweeper(PeriodicRound):
    def __init__(self, runtime: ServiceRuntime, objects: ObjectStore, *, settings: DeliverySettings) -> None:
        self.runtime, self.objects, self.settings = runtime, objects, settings
        self.interval_s, self.task_name = settings.retention_sweep_interval_s, "delivery-retention"

    async def sweep_once(self, now: datetime | None = None) -> int:
        """One round; the number of tenants' objects deleted or blanked by their retention (0
        when another replica holds the round). The copies of hosted outputs it removes too are
        logged, not counted: they are no tenant's."""
        now = now or datetime.now(UTC)
        deleted = copies = 0
        async with exclusive_round(self.runtime.pool, self.runtime.name, round_name="retention") as conn:
            if conn is None:
                return 0
            for tenant in await store.retention_rules(conn):
                deleted += await self._sweep_outputs(tenant, now) + await self._sweep_candidates(conn, tenant, now=now)
            copies = await self._sweep_copies(conn, now)
        if deleted or copies:
            log.info("retention: deleted %d objects, and %d copies of hosted outputs", deleted, copies)
        return deleted

    async def _sweep_outputs(self, tenant: dict[str, Any], now: datetime) -> int:
        if tenant["outputs_days"] is None:
            return 0
        objects = await self.objects.list_objects(self.objects.public_bucket, f"{tenant['tenant_id']}/")
        keys = expired(objects, now - timedelta(days=tenant["outputs_days"]))
        await asyncio.gather(*(self.objects.delete(self.objects.public_bucket, key) for key in keys))
        return len(keys)  # delivered_images keeps the record: it tells delivered candidates from the others

    async def _sweep_copies(self, conn: Conn, now: datetime) -> int:
        """The copies of hosted outputs whose job ended, or that are older than the bound."""
        bucket = self.objects.internal_bucket
        objects = await self.objects.list_objects(bucket, provider_copies_prefix())
        by_job = {obj.key: job_of_copy(obj.key) for obj in objects}
        ended = await store.ended_jobs(conn, sorted({job for job in by_job.values() if job is not None}))
        old = now - timedelta(hours=self.settings.provider_copies_hours)
        doomed = [obj.key for obj in objects if by_job[obj.key] in ended or obj.last_modified < old]
        await asyncio.gather(*(self.objects.delete(bucket, key) for key in doomed))
        return len(doomed)

    async def _sweep_candidates(self, conn: Conn, tenant: dict[str, Any], *, now: datetime) -> int:
        """Candidates past the tenant's retention deleted, or blanked where rejected ones
        share their object; the number of objects deleted or written again."""
        if tenant["candidates_days"] is None:
            return 0
        tenant_id = tenant["tenant_id"]
        objects = await self.objects.list_objects(self.objects.internal_bucket, f"candidates/{tenant_id}/")
        delivered = await store.delivered_sources(conn, tenant_id)
        blanked = await store.blanked_sources(conn, tenant_id)
        kept_before = now - timedelta(days=tenant["candidates_days"])
        audited_before = now - timedelta(days=max(tenant["candidates_days"], self.settings.rejected_audit_days))
        doomed, to_blank = [], []
        for obj in objects:
            parts = delivered.get(obj.key, [])
            written = blanked.get(obj.key, obj.last_modified)
            if not holds_candidates(obj.key):  # one candidate alone
                if written < (kept_before if parts else audited_before):
                    doomed.append(obj.key)
            elif written < audited_before or (parts and written < kept_before and _all_delivered(parts, obj)):
                doomed.append(obj.key)
            elif parts and written < kept_before and obj.key not in blanked:
                to_blank.append((obj, parts))
        for obj, parts in to_blank:
            await store.note_blanked(conn, tenant_id, source_key=obj.key, written_at=obj.last_modified)
            await self._blank(obj.key, parts)
        await asyncio.gather(*(self.objects.delete(self.objects.internal_bucket, key) for key in doomed))
        await store.forget_blanked(conn, [key for key in doomed if key in blanked])
        return len(doomed) + len(to_blank)

    async def _blank(self, key: str, parts: list[tuple[int | None, int | None]]) -> None:
        """The object written again with the delivered candidates' bytes zeroed."""
        data = bytearray(await self.objects.get(self.objects.internal_bucket, key))
        for offset, size in parts:
            if offset is not None and size:
                data[offset: offset + size] = bytes(len(data[offset: offset + size]))
        await self.objects.put(self.objects.internal_bucket, key, content=Blob(bytes(data), ATTEMPT_MEDIA_TYPE))


def _all_delivered(parts: list[tuple[int | None, int | None]], obj: ListedObject) -> bool:
    """Whether the delivered candidates cover the whole object (nothing rejected in it)."""
    return sum(size or 0 for offset, size in set(parts) if offset is not None) >= obj.size_bytes
