"""Consumers: a FastStream subscriber per service over its topics, applying each batch in
one transaction with the inbox (inbox.py; the floors it forgets below, inbox_floors.py), with bounded retries and a DLQ (`<topic>.dlq`)
for a message that keeps failing, offsets committed every interval, and the broker's end
watched (a consumer past it reads from the beginning). With `consumer_fair_turns`, the
records are read ahead into a bounded buffer and applied in fair turns across tenants
(read_ahead.py) instead of a fetch's batch at a time."""

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind

from services.common import telemetry, tracing
from services.common.bus.consumption import Consumption, Unbranched
from services.common.bus.envelope import Envelope, MalformedEnvelope, UnknownType, from_kafka, type_and_floor
from services.common.bus.held import HeldEvents
from services.common.bus.inbox import (
    SKIP_CHECK_BATCH,
    BatchHandler,
    Handler,
    HandlerContext,
    InboxClaim,
    PermanentError,
    Prepare,
    Publish,
    ServiceAway,
    record_applied,
    retry_races,
)
from services.common.bus.inbox_floors import InboxFloors
from services.common.bus.journal_tables import ServiceSchema
from services.common.bus.outbox import OutboxRelay
from services.common.bus.positions import EndWatch, OffsetCommits, rewind, take_as_they_come
from services.common.bus.read_ahead import Applier, ReadAhead, ReadAheadLimits
from services.common.bus.wake import FetchWaker, Waking
from services.common.bus.writing import EventWriter
from services.common.contracts import Event, consumer_group, dead_letter_topic, event_class, topic_of
from services.common.db import database_away, until_database_answers
from services.common.supervision import Backoff, every, stop_tasks, supervise

E = TypeVar("E", bound=Event)
# A handler of one event type, as `on` registers it.
HandlerOf = Callable[[HandlerContext, E], Awaitable[None]]

log = logging.getLogger(__name__)


class AppliedBefore(Exception):
    """The event is in the inbox already: its transaction rolls back."""


async def as_fetched(message: KafkaMessage) -> KafkaMessage:
    """The subscriber's decoder: the batch as fetched, handed to the handler as it is (the
    broker is made with `apply_types=False`: no dependency injection, no thread hand-off per
    batch); the consumer reads each record's envelope itself (`_decode`), so FastStream's
    own decoder parsed every body for nothing."""
    return message


class EventConsumer:
    """One consumer group of a service: routes each event type to its handler, exactly once
    in effect, with bounded retries and a dead-letter topic."""

    def __init__(self, schema: ServiceSchema, relay: OutboxRelay) -> None:
        self.service, self.pool, self.relay, self.settings = schema.name, schema.pool, relay, schema.settings
        self.writer = EventWriter.of(self.settings)
        self.handlers: dict[type[Event], Handler] = {}
        self.preparers: dict[type[Event], Prepare] = {}
        self.claiming: set[type[Event]] = set()
        self.batch_handler: BatchHandler | None = None
        self.batch_types: tuple[type[Event], ...] = ()
        self._lane_slots = asyncio.Semaphore(self.settings.consumer_lanes)
        self.offsets = OffsetCommits(self.service, self.settings.kafka_commit_interval_ms / 1000)
        self.end_watch = EndWatch(self.service, self.settings.bus_check_interval_s)
        self.subscriber = None
        self.topics: list[str] = []
        self.waker: FetchWaker | None = None
        self.read_ahead: ReadAhead | None = None
        self.inbox_floors = InboxFloors(self.service, self.pool)
        self.held = HeldEvents(self.service, self.pool)
        self._releasing: asyncio.Task[None] | None = None
        self.consumption = Consumption(service=self.service, handled=(), passed_over=(), publishers=())

    def on(self, event_type: type[E], prepare: "Prepare | None" = None,
           *, claims: bool = False) -> Callable[[HandlerOf[E]], HandlerOf[E]]:
        """Register the handler of `event_type`. `prepare`, if given, does the event's slow
        I/O and computation before the transaction opens (it must be safe to repeat); the
        handler finds its result in `ctx.prepared`. With `claims`, the handler claims the
        event on the inbox itself, in its first statement (`ctx.claim`), one statement where
        two were; it must send none before."""
        def register(handler: HandlerOf[E]) -> HandlerOf[E]:
            # Called only with events of `event_type` (the dispatch looks the type up).
            self.handlers[event_type] = cast(Handler, handler)
            if prepare is not None:
                self.preparers[event_type] = prepare
            if claims:
                self.claiming.add(event_type)
            return handler

        return register

    @property
    def group_id(self) -> str:
        return consumer_group(self.settings.topic_namespace, self.service)

    def on_batch(self, event_types: tuple[type[Event], ...], handler: BatchHandler) -> None:
        """Apply these event types a batch per transaction (for throughput on hot rows)."""
        self.batch_types, self.batch_handler = event_types, handler

    def handles(self, envelope: Envelope) -> bool:
        return type(envelope.event) in self.handlers or isinstance(envelope.event, self.batch_types)

    def registered(self) -> tuple[type[Event], ...]:
        """The event types it has a handler for."""
        return (*self.handlers, *self.batch_types)

    def attach(self, broker: KafkaBroker, consumption: Consumption) -> list[str]:
        """Subscribe to the topics `consumption` reads, once it holds (it raises Unbranched,
        naming the types, otherwise: the service does not start); returns those topics."""
        consumption.check(self.registered())
        s = self.settings
        self.consumption = consumption
        topics = [topic_of(publisher, s.topic_namespace) for publisher in consumption.publishers]
        telemetry.preinitialise(telemetry.DLQ_MESSAGES, *((self.service, topic) for topic in topics))
        telemetry.preinitialise(telemetry.EVENTS_CONSUMED, *((self.service, t.event_type, outcome)
                                                             for t in self.registered()
                                                             for outcome in ("applied", "duplicate")))
        options: dict[str, Any] = {
            "group_id": self.group_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.MANUAL,  # see OffsetCommits
            "session_timeout_ms": s.kafka_session_timeout_ms,
            "heartbeat_interval_ms": s.kafka_heartbeat_interval_ms,
            "fetch_max_wait_ms": s.kafka_fetch_max_wait_ms,
            "max_poll_interval_ms": s.kafka_max_poll_interval_ms,
            "group_instance_id": s.kafka_group_instance_id,
        }
        subscriber = broker.subscriber(*topics, batch=True, max_records=s.consumer_batch_size,
                                       batch_timeout_ms=s.kafka_batch_timeout_ms, decoder=as_fetched, **options)
        if s.consumer_fair_turns:
            if self.batch_handler is not None:
                raise ValueError(f"{self.service} applies events in batches, which fair turns cannot reorder")
            self.read_ahead = ReadAhead(ReadAheadLimits(limit=s.consumer_read_ahead, lanes=s.consumer_lanes,
                                                        retry_s=s.consumer_backoff_max_s,
                                                        spare_lanes=s.consumer_spare_lanes),
                                        Applier(self._apply_one, self.offsets, on_release=self._fetch_again))
            subscriber(self._reading_ahead)
        else:
            subscriber(self._committing(self._on_batch if self.batch_handler else self._on_records))
        room = self.read_ahead.room if self.read_ahead is not None else None
        subscriber.get_msg = partial(take_as_they_come, subscriber, room=room)
        self.broker, self.subscriber, self.topics = broker, subscriber, topics
        return topics

    def start_waking(self, database_url: str) -> None:
        """Once the broker has started: fetch when the relays announce (wake.py), if so set."""
        s = self.settings
        if s.bus_wake_on_publish and self.subscriber is not None and self.subscriber.consumer is not None:
            self.waker = FetchWaker(database_url, self.topics,
                                    waking=Waking(namespace=s.topic_namespace, idle_fetch_s=s.bus_idle_fetch_interval_s, service=self.service))
            self.waker.start(self.subscriber.consumer)

    def start_applying_held(self) -> None:
        """Apply the held events whose types this release knows, now and every little while
        (held.py): those a replica of an earlier release held during a rolling update."""
        every_s = self.settings.bus_check_interval_s
        self._releasing = supervise(f"{self.service}-held", partial(every, every_s, self.apply_held,
                                                                     what=f"{self.service}-held"))

    async def stop_applying_held(self) -> None:
        await stop_tasks(self._releasing)
        self._releasing = None

    async def apply_held(self) -> int:
        return await self.held.apply_known(self._apply_held)

    async def _apply_held(self, envelope: Envelope) -> None:
        if self.handles(envelope):  # else it is one this service passes over
            await self.apply(envelope)

    def _fetch_again(self) -> None:
        """The read-ahead has room again: fetch as after a relay's word (wake.py), if it listens."""
        if self.waker is not None:
            self.waker.fetch(self.waker.topics)

    async def stop_applying(self) -> None:
        """Stop the read-ahead's lanes, if it has them: what they were applying comes again."""
        if self.read_ahead is not None:
            await self.read_ahead.stop()

    def _committing(self, apply: Callable[[KafkaMessage], Awaitable[None]]) -> Callable[[KafkaMessage], Awaitable[None]]:
        """`apply` for a fetched batch; its offsets are committed later (OffsetCommits), and a
        batch that fails (the broker is away, even for the DLQ) is fetched again."""
        async def on_message(msg: KafkaMessage) -> None:
            try:
                await apply(msg)
            except BaseException as exc:
                rewind(msg.consumer, msg.raw_message)
                if isinstance(exc, Exception) and database_away(exc):  # not again before it is back
                    await until_database_answers(self.pool)
                raise
            self.offsets.applied(msg.consumer, msg.raw_message)
            self.end_watch.watch(msg.consumer)

        return on_message

    async def _reading_ahead(self, msg: KafkaMessage) -> None:
        """Fair turns: the fetch's records join the read-ahead, which applies them in its own
        time; a fetch that cannot be read (the database is away for the inbox's sifting, the
        broker for the DLQ) comes again."""
        assert self.read_ahead is not None
        try:
            to_apply = await self._not_applied(await self._decode(msg.raw_message, observe=False))
        except BaseException as exc:
            rewind(msg.consumer, msg.raw_message)
            if isinstance(exc, Exception) and database_away(exc):
                await until_database_answers(self.pool)
            raise
        self.read_ahead.take(msg.consumer, msg.raw_message, to_apply=to_apply)
        self.end_watch.watch(msg.consumer)

    async def _apply_one(self, record: ConsumerRecord, envelope: Envelope) -> None:
        """One event in its turn: its wait in the read-ahead counts as queue time."""
        self._observe_queue_time(record, envelope)
        with self._handling(record, envelope):
            await self._apply_with_retries(record, envelope)

    async def _decode(self, records: Iterable[ConsumerRecord],
                      observe: bool = True) -> list[tuple[ConsumerRecord, Envelope]]:
        """The records this consumer handles, decoded (those of types it passes over are left
        at their headers); undecodable ones go to the DLQ, and so
        does one of a type it neither handles nor passes over (one its declaration could not
        know of: a type defined after it started), logged and counted there."""
        decoded = []
        for record in records:
            if self._passed_over(record):
                continue
            try:
                envelope = from_kafka(record, record.topic)
            except UnknownType as unknown:  # a later release's: kept until a release that knows it looks
                await self.held.hold(record, topic=record.topic, unknown=unknown)
                continue
            except MalformedEnvelope as exc:
                await self._dead_letter(record, exc, attempts=1)
                continue
            self.inbox_floors.saw(record.topic, envelope.floor)
            if self.handles(envelope):
                if observe:
                    self._observe_queue_time(record, envelope)
                decoded.append((record, envelope))
            elif not self.consumption.passes_over(type(envelope.event)):
                await self._dead_letter(record, Unbranched(f"{self.service} has no branch for {envelope.type}"),
                                        attempts=1)
        return decoded

    def _passed_over(self, record: ConsumerRecord) -> bool:
        """Whether the record is of a type this consumer passes over, read from its headers: its
        body is not parsed (of the 20 records a one-image job's consumers fetch, 6 are passed
        over), its journal's floor is noted as any record's is. A malformed one is left to the
        consumers that handle its type, which dead-letter it."""
        event_type, floor = type_and_floor(record)
        known = event_class(event_type)
        if known is None or not self.consumption.passes_over(known):
            return False
        self.inbox_floors.saw(record.topic, floor)
        return True

    async def _on_records(self, msg: KafkaMessage) -> None:
        """Per-key lanes: the records of one key (one job) are applied in their order, those
        of different keys side by side, up to `consumer_lanes` at once. The offsets are
        committed when every lane is done, so a crash redelivers the batch (the inbox skips
        what was applied)."""
        lanes: dict[bytes | None, list[tuple[ConsumerRecord, Envelope]]] = {}
        for record, envelope in await self._not_applied(await self._decode(msg.raw_message)):
            lanes.setdefault(record.key, []).append((record, envelope))
        outcomes = await asyncio.gather(*(self._run_lane(lane) for lane in lanes.values()), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # the broker is away (even the DLQ): the batch comes again

    async def _not_applied(self, decoded: list[tuple[ConsumerRecord, Envelope]]) -> list[tuple[ConsumerRecord, Envelope]]:
        """A large batch without the events applied before, found in one query: what a
        journal publishes again after a broker lost its log is skipped in batches, not a
        transaction per event. (A small batch is new events, which the inbox insert checks.)"""
        if len(decoded) < SKIP_CHECK_BATCH:
            return decoded
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT event_id FROM inbox WHERE event_id = ANY(%b)",
                                             [[envelope.id for _, envelope in decoded]])).fetchall()
        applied = {row["event_id"] for row in rows}
        for _, envelope in decoded:
            if envelope.id in applied:
                telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "duplicate").inc()
        return [(record, envelope) for record, envelope in decoded if envelope.id not in applied]

    async def _run_lane(self, lane: list[tuple[ConsumerRecord, Envelope]]) -> None:
        async with self._lane_slots:
            for record, envelope in lane:
                with self._handling(record, envelope):
                    await self._apply_with_retries(record, envelope)

    async def _on_batch(self, msg: KafkaMessage) -> None:
        decoded = await self._decode(msg.raw_message)
        if not decoded:
            return
        while True:
            try:
                await self.apply_batch([envelope for _, envelope in decoded])
                return
            except Exception as exc:
                if not database_away(exc):
                    log.warning("a batch of %d events failed; applying them one by one", len(decoded), exc_info=True)
                    break
                await self._wait_for_database(exc)
        for record, envelope in decoded:  # isolates the event that fails, which alone goes to the DLQ
            with self._handling(record, envelope):
                await self._apply_with_retries(record, envelope)

    def _observe_queue_time(self, record: ConsumerRecord, envelope: Envelope) -> None:
        waited = (datetime.now(UTC) - envelope.time).total_seconds()
        telemetry.QUEUE_SECONDS.labels(self.service, record.topic).observe(max(0.0, waited))

    async def apply_batch(self, envelopes: list[Envelope]) -> list[Envelope]:
        """Apply a batch in one transaction; returns the envelopes that had not been applied."""
        with telemetry.timed_stage(self.service, "apply_batch"):
            return await retry_races(lambda: self._apply_batch_once(envelopes))

    async def _apply_batch_once(self, envelopes: list[Envelope]) -> list[Envelope]:
        claim = InboxClaim(envelopes)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                publish = Publish(conn, f"/genline/{self.service}", writer=self.writer)
                if self.batch_handler is None:
                    await claim.alone(conn)
                else:  # its first statement claims the batch, and it applies what is fresh
                    await self.batch_handler(conn, claim, publish)
                if claim.claimed is None:
                    raise RuntimeError(f"{self.service}'s batch handler did not claim its batch in the inbox")
        fresh, outgoing = claim.claimed, publish.outgoing
        if not fresh:
            return []
        for event_type, count in Counter(envelope.type for envelope in fresh).items():
            telemetry.EVENTS_CONSUMED.labels(self.service, event_type, "applied").inc(count)
        if log.isEnabledFor(logging.INFO):
            for envelope in fresh:
                context = telemetry.JobContext(job_id=envelope.subject, tenant_id=envelope.tenant_id, traceparent=envelope.traceparent)
                with telemetry.job_context(context):
                    log.info("applied %s", envelope.type)
        if outgoing:
            self.relay.notify()
        return fresh

    @contextlib.contextmanager
    def _handling(self, record: ConsumerRecord, envelope: Envelope) -> Iterator[None]:
        """Logs name the job, tenant and trace (and know its prompt, to redact it); a consumer
        span continues the event's trace."""
        spec = getattr(envelope.event, "job", None)
        with (telemetry.job_context(telemetry.JobContext(job_id=envelope.subject, tenant_id=envelope.tenant_id, traceparent=envelope.traceparent,
                                                         prompt=getattr(spec, "prompt", None))),
              tracing.continued(envelope.traceparent, f"{record.topic} process", kind=SpanKind.CONSUMER)):
            yield

    async def _apply_with_retries(self, record: ConsumerRecord, envelope: Envelope) -> None:
        """Apply the event, trying again with backoff; one that keeps failing goes to the DLQ.
        While the database, or a service the handler asks (ServiceAway), is away nothing can
        be applied, so waiting for it is not a failure of the event and counts against none of
        its attempts."""
        s = self.settings
        attempt, away = 0, 0
        while True:
            try:
                await self.apply(envelope)
                return
            except Exception as exc:
                if database_away(exc):
                    await self._wait_for_database(exc)
                    continue
                if isinstance(exc, ServiceAway):
                    away += 1
                    await self._wait_for_service(envelope, exc, in_a_row=away)
                    continue
                attempt += 1
                log.warning("handling %s failed (attempt %d): %s", envelope.type, attempt, exc, exc_info=True)
                if isinstance(exc, PermanentError) or attempt == s.consumer_max_attempts:
                    await self._dead_letter(record, exc, attempts=attempt)
                    return
                backoff = min(s.consumer_backoff_max_s, s.consumer_backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(backoff * (0.5 + random.random()))

    async def _wait_for_service(self, envelope: Envelope, exc: ServiceAway, *, in_a_row: int) -> None:
        s = self.settings
        if in_a_row == 1 or in_a_row % 10 == 0:
            log.warning("handling %s waits for a service that does not answer (%d times so far): %s", envelope.type,
                        in_a_row, exc)
        await asyncio.sleep(Backoff(s.consumer_backoff_s, s.consumer_backoff_max_s).wait_s(in_a_row))

    async def _wait_for_database(self, exc: Exception) -> None:
        log.warning("the database is away (%s: %s); applying again once it answers", type(exc).__name__, exc)
        await until_database_answers(self.pool)

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event in one transaction; returns False when it had been applied before."""
        if self.batch_handler and isinstance(envelope.event, self.batch_types):
            return bool(await self.apply_batch([envelope]))
        handler, prepare = self.handlers[type(envelope.event)], self.preparers.get(type(envelope.event))
        # No connection is held while it prepares. An event applied before is not looked up
        # first: a large batch was sifted by `_not_applied`, a redelivered event in a small
        # one is rare, and each preparer, safe to repeat, finds its job done in its own first
        # query; the inbox then skips the handler.
        prepared = await prepare(envelope) if prepare else None
        claim = InboxClaim([envelope]) if type(envelope.event) in self.claiming else None
        try:
            async with self.pool.connection() as conn:
                async with conn.transaction():
                    if claim is None and not await record_applied(conn, envelope):
                        raise AppliedBefore
                    ctx = HandlerContext(conn=conn, envelope=envelope, source=f"/genline/{self.service}", writer=self.writer,
                                         prepared=prepared, claim=claim)
                    with telemetry.timed_stage(self.service, f"apply:{envelope.type}"):
                        await handler(ctx, envelope.event)
                    if claim is not None:
                        if claim.claimed is None:
                            raise RuntimeError(f"the handler of {envelope.type} did not claim it in the inbox")
                        if not claim.claimed:
                            raise AppliedBefore  # what its statements did goes with the rollback
        except AppliedBefore:
            telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "duplicate").inc()
            return False
        telemetry.EVENTS_CONSUMED.labels(self.service, envelope.type, "applied").inc()
        log.info("applied %s", envelope.type)
        if ctx.emitted:
            self.relay.notify()
        for callback in ctx.committed:
            callback()
        return True

    async def _dead_letter(self, record: ConsumerRecord, exc: Exception, *, attempts: int) -> None:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        headers |= {
            "genline_error": f"{type(exc).__name__}: {exc}"[:2000],
            "genline_consumer": self.group_id,
            "genline_attempts": str(attempts),
            "genline_source_offset": f"{record.topic}/{record.partition}/{record.offset}",
        }
        await self.broker.publish(record.value, dead_letter_topic(record.topic), key=record.key, headers=headers)
        telemetry.DLQ_MESSAGES.labels(self.service, record.topic).inc()
        log.error("sent %s/%s/%s to the DLQ after %d attempts: %s", record.topic, record.partition, record.offset, attempts, exc)
