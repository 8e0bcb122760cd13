"""Webhooks, sent by delivery from its own outbox (the `webhook_messages` table).

1. Queue: a job's JobFinished adds one message per enabled endpoint of its tenant subscribed to
   `job.<state>`, and one for the job's own `webhook_url`, in the transaction that records
   the event as applied; each message has its `webhook-id` for good. A tenant's alert
   (AccountAlerted, raised once per crossing by the ledger) adds one per endpoint subscribed
   to it.
2. Send: the sender claims due messages (a lease, so replicas share the work and a message
   whose sender died is taken over), checks the target's addresses after resolving it, and
   posts the job with freshly signed links and its prompt opened (the message keeps it
   sealed, as JobFinished carried it; an erased job's reads as erased), signed with every
   secret in force. Redirects are not followed.
3. Record: every attempt (time, status, latency, the start of the answer, the error); a 2xx
   delivers the message, a 410 disables the endpoint, anything else is retried on the
   schedule until it is spent. A redelivery queues the message again, same `webhook-id`.
"""

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, assert_never

import httpx
from psycopg.rows import DictRow

from services.common import targets, telemetry
from services.common.bus import EventWriter, InboxClaim, OutboxRelay, add_to_outbox, envelop
from services.common.contracts import (
    PROGRESS_WEBHOOK_EVENT,
    SUBJECT_WEBHOOK_EVENTS,
    AccountAlerted,
    JobFinished,
    JobProgressed,
    SealedText,
    SubjectChanged,
    WebhookSent,
)
from services.common.data_keys import DataKeys
from services.common.db import Conn, Pool
from services.common.storage import ObjectStore
from services.common.supervision import stop_tasks, supervise
from services.delivery import domain, store
from services.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)


# ---- queueing ----------------------------------------------------------------------------


async def queue_webhooks(conn: Conn, event: JobFinished | JobProgressed,
                         *, claim: InboxClaim) -> int:
    """The messages of a finished job (or of a job's progress): one per subscribed endpoint,
    one for its own URL; its first statement claims the event on the inbox (nothing is queued
    for a duplicate)."""
    match event:
        case JobProgressed():
            event_type, payload, occurrence = PROGRESS_WEBHOOK_EVENT, event.progress, f"{event.seq}"
        case JobFinished():
            event_type, payload, occurrence = domain.webhook_event(event.state), event.view, ""
        case _:
            assert_never(event)
    endpoints = await store.subscribed_endpoints(conn, event.tenant_id, event_type=event_type, claim=claim)
    if not claim.claimed:
        return 0
    targets_ = [(e["id"], e["url"], str(e["id"])) for e in endpoints]
    if event.webhook_url and domain.wanted(event_type, event.webhook_events):
        await store.job_secret(conn, event.tenant_id)
        targets_.append((None, event.webhook_url, "job"))
    for endpoint_id, url, target in targets_:
        webhook_id = domain.webhook_id(event.job_id, event_type + occurrence, target=target)
        await store.queue_message(conn, store.WebhookMessage(webhook_id=webhook_id, tenant_id=event.tenant_id, endpoint_id=endpoint_id, url=url, job_id=event.job_id,
                                                             event_type=event_type, payload=json.dumps(payload)))
    return len(targets_)


async def queue_alert_webhooks(conn: Conn, event: AccountAlerted, *, claim: InboxClaim) -> int:
    """The messages of a tenant's alert: one per endpoint subscribed to it; its first statement
    claims the event on the inbox (nothing is queued for a duplicate)."""
    endpoints = await store.subscribed_endpoints(conn, event.tenant_id, event_type=event.alert, claim=claim)
    if not claim.claimed:
        return 0
    payload = json.dumps(domain.alert_data(event))
    for endpoint in endpoints:
        await store.queue_message(conn, store.WebhookMessage(
            webhook_id=domain.alert_webhook_id(event.alert_id, str(endpoint["id"])), tenant_id=event.tenant_id, endpoint_id=endpoint["id"],
            url=endpoint["url"], job_id=None, event_type=event.alert, payload=payload))
    return len(endpoints)


async def queue_subject_webhooks(conn: Conn, event: SubjectChanged, *, claim: InboxClaim) -> int:
    """The messages of a subject's change (`subject.ready`, `.trained`, `.failed`): one per
    endpoint subscribed to it, the subject as the API shows it (never its photos); its first
    statement claims the event on the inbox. Other states are sent nowhere."""
    event_type = f"subject.{event.state}"
    endpoints = await store.subscribed_endpoints(conn, event.tenant_id, event_type=event_type, claim=claim)
    if not claim.claimed or event_type not in SUBJECT_WEBHOOK_EVENTS:
        return 0
    payload = json.dumps(domain.subject_data(event))
    for endpoint in endpoints:
        await store.queue_message(conn, store.WebhookMessage(
            webhook_id=domain.subject_webhook_id(event, str(endpoint["id"])), tenant_id=event.tenant_id, endpoint_id=endpoint["id"], url=endpoint["url"],
            job_id=None, event_type=event_type, payload=payload))
    return len(endpoints)


# ---- sending -----------------------------------------------------------------------------


def signing_secrets(message: DictRow) -> list[str]:
    if message["endpoint_id"] is None:
        return [message["job_secret"]]
    return [message["secret"]] + ([message["previous_secret"]] if message["previous_in_force"] else [])


async def read_excerpt(response: httpx.Response, limit: int = domain.RESPONSE_EXCERPT_CHARS * 4) -> str:
    """The start of the answer only: a receiver may answer with anything, of any size."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data.decode(errors="replace")[: domain.RESPONSE_EXCERPT_CHARS]


@dataclass(eq=False, repr=False, kw_only=True)
class WebhookSender:
    """Claims the due messages of `webhook_messages`, posts them and records how each attempt went."""

    pool: Pool
    relay: OutboxRelay
    objects: ObjectStore
    settings: DeliverySettings
    guard: targets.Guard = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    data_keys: DataKeys = field(init=False)
    retries: domain.RetrySchedule = field(init=False)
    writer: EventWriter = field(init=False)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _inflight: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.guard = targets.Guard.of(targets.Purpose.WEBHOOK_RECEIVERS, self.settings.webhook_allowed_networks)
        self.http = httpx.AsyncClient(follow_redirects=False, timeout=self.settings.webhook_timeout_s)
        self.data_keys = DataKeys(self.settings, "delivery")
        self.retries = domain.RetrySchedule(self.settings.webhook_retry_schedule_s, self.settings.webhook_retry_jitter)
        self.writer = EventWriter.of(self.settings)

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = supervise("delivery-webhooks", self._run)

    async def stop(self) -> None:
        """Stop claiming; what is being sent gets its timeout, and a message cut off is sent
        again once its claim lapses."""
        await stop_tasks(self._task)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.settings.webhook_timeout_s)
        await self.http.aclose()
        await self.data_keys.aclose()

    async def _run(self) -> None:
        woken = True
        while True:
            free = self.settings.webhook_concurrency - len(self._inflight)
            # A look the poll interval started is counted apart: it comes with time, not with jobs.
            with telemetry.counted_for(None if woken else "delivery-webhooks-poll"):
                claimed = await self._claim(free) if free > 0 else []
            for message in claimed:
                task = asyncio.create_task(self.send(message))
                self._inflight.add(task)
                task.add_done_callback(self._sent)
            if claimed and len(claimed) == free:
                continue  # more may be due
            try:
                woken = await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_interval_s)
            except TimeoutError:
                woken = False
            self._wake.clear()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception():
            log.error("sending a webhook failed", exc_info=task.exception())
        self._wake.set()

    async def _claim(self, limit: int) -> list[DictRow]:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                return await store.claim_due(conn, self.settings.webhook_claim_s, limit=limit)
        except Exception:  # the database is away: try again at the next poll
            log.warning("claiming due webhooks failed", exc_info=True)
            return []

    async def send(self, message: DictRow) -> None:
        if message["endpoint_id"] is not None and (not message["enabled"] or message["deleted_at"] is not None):
            await self._abandon(message["id"])
            return
        view = await self.with_clear_prompt(message["job_id"], self.with_fresh_links(message["payload"]))
        at = datetime.now(UTC)
        outgoing = domain.WebhookPost(message["webhook_id"], at, domain.webhook_body(message["event_type"], at, view=view))
        headers = {"webhook-id": outgoing.webhook_id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": domain.signature_header(signing_secrets(message), outgoing),
                   "content-type": "application/json", "user-agent": "Genline-Webhooks/1"}
        attempt = await self.post(message["url"], outgoing.body, headers=headers)
        await self.record(message, at, attempt=attempt)

    async def with_clear_prompt(self, job_id: uuid.UUID, view: dict[str, Any]) -> dict[str, Any]:
        """The view as its tenant sees it: the prompt opened with the job's data key."""
        if "prompt" not in view:
            return view
        return view | {"prompt": await self.data_keys.open(job_id, SealedText.read(view["prompt"]))}

    def with_fresh_links(self, view: dict[str, Any]) -> dict[str, Any]:
        outputs = []
        for output in view.get("outputs", []):
            links = self.objects.signed_links(output["key"], output.get("thumbnail_key"), ttl_s=self.settings.link_ttl_s)
            outputs.append(output | links | {"expires_at": links["expires_at"].isoformat()})
        return view | {"outputs": outputs}

    async def post(self, url: str, body: bytes, *, headers: dict[str, str]) -> domain.Attempt:
        started = time.perf_counter()
        try:
            async with self.guard.stream("POST", url, http=self.http, content=body, headers=headers) as response:
                excerpt = await read_excerpt(response)
            return domain.Attempt(status_code=response.status_code, excerpt=excerpt, latency_ms=elapsed_ms(started))
        except targets.RefusedTarget as refused:
            return domain.Attempt(error=f"refused: {refused}", latency_ms=elapsed_ms(started))
        except httpx.HTTPError as error:
            return domain.Attempt(error=f"{type(error).__name__}: {error}"[:500], latency_ms=elapsed_ms(started))

    async def record(self, message: DictRow, at: datetime, *, attempt: domain.Attempt) -> None:
        outcome = domain.attempt_outcome(attempt.status_code)
        telemetry.WEBHOOK_SECONDS.observe(attempt.latency_ms / 1000)
        async with self.pool.connection() as conn, conn.transaction():
            await store.record_attempt(conn, message["id"], at=at, attempt=attempt)
            if outcome == "delivered":
                await self._close(conn, message, state="delivered", attempt=attempt)
            elif outcome == "gone":
                await self._close(conn, message, state="failed", attempt=attempt)
                await store.disable_endpoint(conn, message["endpoint_id"], reason=f"answered 410 Gone at {at:%Y-%m-%d %H:%M:%S}Z")
            elif not await self._schedule_retry(conn, message):
                outcome = "given_up"
                await self._close(conn, message, state="failed", attempt=attempt)
        telemetry.WEBHOOK_ATTEMPTS.labels(outcome).inc()
        if outcome != "retry":
            self.relay.notify()
        log.info("webhook %s to %s: %s", message["webhook_id"], message["url"],
                 attempt.status_code or attempt.error)

    async def _schedule_retry(self, conn: Conn, message: DictRow) -> bool:
        """False when the schedule is spent."""
        failures = message["failures"] + 1
        delay_s = self.retries.delay_s(failures)
        if delay_s is None:
            return False
        await store.schedule_retry(conn, message["id"], failures=failures, delay_s=delay_s)
        return True

    async def _close(self, conn: Conn, message: DictRow, *, state: str, attempt: domain.Attempt) -> None:
        """The message is done: its state, and WebhookSent for the job's history."""
        attempts = await store.close_message(conn, message["id"], state=state)
        sent = WebhookSent(job_id=message["job_id"], tenant_id=message["tenant_id"], webhook_id=message["webhook_id"],
                           event=message["event_type"], endpoint_id=message["endpoint_id"], outcome=state,
                           attempts=attempts, status_code=attempt.status_code)
        await add_to_outbox(conn, envelop(sent, "/genline/delivery"), writer=self.writer)

    async def _abandon(self, message_id: uuid.UUID) -> None:
        async with self.pool.connection() as conn:
            await store.abandon(conn, message_id)


def elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
