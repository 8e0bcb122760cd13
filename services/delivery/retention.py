"""The retention sweeper: each tenant's images are kept as long as its retention says.

Every `retention_sweep_interval_s` one delivery replica (the one holding a transaction-level
advisory lock) goes through the tenants with a retention and deletes
1. outputs (public bucket, `{tenant}/…`, thumbnails included) older than `outputs_days`;
2. candidates (internal bucket, `candidates/{tenant}/…`) older than `candidates_days` when
   they were delivered, and older than that or the audit period, whichever is longer, when
   they were not: a rejected candidate is what an auditor asks about.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from services.common.rounds import PeriodicRound, exclusive_round
from services.common.runtime import ServiceRuntime
from services.common.storage import ListedObject, ObjectStore
from services.delivery import store
from services.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)


def expired(objects: list[ListedObject], older_than: datetime) -> list[str]:
    return [obj.key for obj in objects if obj.last_modified < older_than]


class RetentionSweeper(PeriodicRound):
    def __init__(self, runtime: ServiceRuntime, objects: ObjectStore, settings: DeliverySettings) -> None:
        self.runtime, self.objects, self.settings = runtime, objects, settings
        self.interval_s, self.task_name = settings.retention_sweep_interval_s, "delivery-retention"

    async def sweep_once(self, now: datetime | None = None) -> int:
        """One round; the number of objects deleted (0 when another replica holds the round)."""
        now = now or datetime.now(UTC)
        deleted = 0
        async with exclusive_round(self.runtime.pool, self.runtime.name, "retention") as conn:
            if conn is None:
                return 0
            for tenant in await store.retention_rules(conn):
                deleted += await self._sweep_outputs(tenant, now) + await self._sweep_candidates(conn, tenant, now)
        if deleted:
            log.info("retention: deleted %d objects", deleted)
        return deleted

    async def _sweep_outputs(self, tenant: dict, now: datetime) -> int:
        if tenant["outputs_days"] is None:
            return 0
        objects = await self.objects.list_objects(self.objects.public_bucket, f"{tenant['tenant_id']}/")
        keys = expired(objects, now - timedelta(days=tenant["outputs_days"]))
        await asyncio.gather(*(self.objects.delete(self.objects.public_bucket, key) for key in keys))
        return len(keys)  # delivered_images keeps the record: it tells delivered candidates from the others

    async def _sweep_candidates(self, conn, tenant: dict, now: datetime) -> int:
        if tenant["candidates_days"] is None:
            return 0
        objects = await self.objects.list_objects(self.objects.internal_bucket, f"candidates/{tenant['tenant_id']}/")
        delivered = await store.delivered_sources(conn, tenant["tenant_id"])
        kept_days = tenant["candidates_days"]
        audit_days = max(kept_days, self.settings.rejected_audit_days)
        keys = (expired([o for o in objects if o.key in delivered], now - timedelta(days=kept_days))
                + expired([o for o in objects if o.key not in delivered], now - timedelta(days=audit_days)))
        await asyncio.gather(*(self.objects.delete(self.objects.internal_bucket, key) for key in keys))
        return len(keys)
