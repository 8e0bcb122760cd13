"""The evaluation runner: every replica runs one; each round leases an evaluation batch with
images left (one replica at a time per batch), judges its next window of images and records
their verdicts, so a restart goes on from the last window recorded; a batch whose images are
all judged is charged once and ended. An ended batch that names a webhook_url is told
(`evaluation.completed`, signed as a job's webhook_url is), retried with backoff until it
answers 2xx or its attempts are spent."""

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from services.common import targets
from services.common.problems import Problem
from services.common.rounds import PeriodicRound
from services.ingest.evaluations import store as evaluation_store
from services.ingest.evaluations.sources import Sources
from services.ingest.evaluations.work import Workshop, evaluation_of
from services.ingest.settings import IngestSettings
from services.ingest.webhooks import webhook_guard

log = logging.getLogger(__name__)
AGAIN_S, LEASE_S = 0.05, 120.0
WEBHOOK_BACKOFF_S = (5, 30, 120, 600, 1800)


def signature(secret: str, signed: str) -> str:
    """Standard Webhooks: `v1,` and the HMAC-SHA256 of `id.timestamp.body` under the secret's key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return "v1," + base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()


class EvaluationRunner(PeriodicRound):
    def __init__(self, app: FastAPI, settings: IngestSettings) -> None:
        self.app, self.settings = app, settings
        self.interval_s, self.task_name = settings.evaluation_interval_s, "ingest-evaluations"
        self.idle_interval_s = settings.evaluation_idle_interval_s

    def workshop(self) -> Workshop:
        state = self.app.state
        return Workshop(Sources(runtime=state.runtime, settings=self.settings, objects=state.objects, gate=state.screening), state.ledger_http)

    async def sweep_once(self) -> int:
        runtime = self.app.state.runtime
        async with runtime.pool.connection() as conn:
            row = await evaluation_store.claim_evaluation(conn, LEASE_S)
        if row is None:
            return 0
        wait_s = AGAIN_S
        try:
            wait_s = await self.work(row)
        except Problem as problem:  # the scorer, the ledger or the database away: later
            wait_s = float(problem.extra.get("retry_after") or 5)
            log.warning("evaluation %s waits %.0f s: %s", row["id"], wait_s, problem.detail)
        finally:
            async with runtime.pool.connection() as conn:
                await evaluation_store.release_evaluation(conn, row["id"], wait_s=wait_s)
        return 1

    async def next_due_s(self) -> float | None:
        async with self.app.state.runtime.pool.connection() as conn:
            return await evaluation_store.next_due_s(conn)

    async def work(self, row: dict[str, Any]) -> float:
        if row["status"] in ("pending", "running"):
            workshop = self.workshop()
            if await workshop.window(row, self.settings.evaluation_window):
                await workshop.finish(row)
            return AGAIN_S
        return await self.tell(row)

    async def tell(self, row: dict[str, Any]) -> float:
        """Send the webhook of an ended batch; how long until the next try, if one is due."""
        runtime, delivery = self.app.state.runtime, self.app.state.delivery_http
        secret = (await delivery.get(f"/internal/v1/tenants/{row['tenant_id']}/webhook-secret")).json()["key"]
        async with runtime.pool.connection() as conn:
            images = await evaluation_store.evaluation_images(conn, row["id"])
        shown = evaluation_of(row, images).model_dump(mode="json", exclude={"images"})
        body = json.dumps({"type": "evaluation.completed", "timestamp": shown["completed_at"], "data": shown})
        webhook_id, stamp = f"msg_{uuid.uuid5(row['id'], 'evaluation.completed').hex}", str(int(time.time()))
        headers = {"content-type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": stamp,
                   "webhook-signature": signature(secret, f"{webhook_id}.{stamp}.{body}")}
        delivered = await self.post(row["webhook_url"], body, headers=headers)
        attempts = row["webhook_attempts"] + 1
        state = "delivered" if delivered else "failed" if attempts >= self.settings.evaluation_webhook_attempts \
            else "pending"
        async with runtime.pool.connection() as conn:
            await evaluation_store.webhook_tried(conn, row["id"], state=state)
        return float(WEBHOOK_BACKOFF_S[min(attempts, len(WEBHOOK_BACKOFF_S)) - 1])

    async def post(self, url: str, body: str, *, headers: dict[str, str]) -> bool:
        try:
            async with httpx.AsyncClient(timeout=10) as http, \
                    webhook_guard(self.settings).stream("POST", url, http=http, content=body, headers=headers) as response:
                return 200 <= response.status_code < 300
        except (targets.RefusedTarget, httpx.HTTPError) as error:
            log.info("evaluation webhook to %s failed: %s", url, error)
            return False
