"""A consumer's fair turns (opt-in, `consumer_fair_turns`: the scorer and delivery, whose work
per event is long). The records of a fetch are read ahead into a buffer and applied in turns
across tenants, not in the order of their partitions, so that one tenant's backlog cannot hold
another tenant's job behind it.

* The turn (services/common/turns.py): tenants by start-time fair queuing, an event a turn,
  costing what such events of its tenant took to apply lately (`COST_WEIGHT`: shares of the
  lanes' time, not of their events), each tenant's share by the plan priority its events carry
  (envelope.py), larger for a higher plan, never the only one; within a tenant, the job's
  priority (interactive ahead of bulk), then the order in which the events came.
* Each key's (job's) events are applied in their order, one at a time, and up to
  `consumer_lanes` keys side by side; while they are all taken, the next turn among the
  tenants with nothing being applied takes a lane more, even when a busy tenant's turn comes
  before it by one turn (at most as many more as the lanes; `consumer_spare_lanes`, off for
  the router, whose one lane is its back-pressure), so that a flood whose events are long to
  apply holds no other tenant's event behind them, and each tenant's share is still its turns'.
* Bounded: once `consumer_read_ahead` records wait, the consumer's partitions are paused
  (positions.FetchHold) until half of them are applied; the rest of the backlog stays in the
  broker, as the group's lag, which autoscaling reads. Fairness reaches as far as the buffer:
  an event behind more than that many records of its partition waits for them to be read.
* Offsets: each partition is committed up to its lowest record not applied yet
  (positions.Unapplied); a crash delivers again what was not applied, and what was applied
  after it, which the inbox skips.
"""

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.common.bus.envelope import Envelope
from services.common.bus.positions import FetchHold, OffsetCommits, Unapplied
from services.common.supervision import stop_tasks
from services.common.turns import JOB_RANK, FairTurns, Turn, plan_share

log = logging.getLogger(__name__)

Key = bytes
# Where the records without a key wait (an event about a tenant, not a job: RetentionSet): one
# key of their own, so they too are applied in their order; None is the turns' "nobody waits".
UNKEYED: Key = b"\x00unkeyed"
# A turn costs, as it comes, what applying such an event of its tenant's has taken lately
# (seconds, a moving average by tenant and event type, this weight to the latest), so that a
# tenant whose events are long (a flood's jobs of 8 images to render) takes its share of the
# lanes' time, not of their events. Never less than the floor, which an event not timed yet
# costs: events shorter than it (most) take turns one for one, whatever the noise in their
# timing.
COST_WEIGHT = 0.3
COST_FLOOR_S = 0.05
COSTS_KEPT = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    record: ConsumerRecord
    envelope: Envelope
    arrival: int
    epoch: int  # its partition's, when it was fetched (Unapplied)


@dataclass(frozen=True, kw_only=True)
class ReadAheadLimits:
    """How many records a consumer reads ahead (`limit`), how many keys it applies at once
    (`lanes`, and as many more for tenants with nothing being applied with `spare_lanes`), and
    how long it waits before it applies again an event that failed."""

    limit: int
    lanes: int
    retry_s: float
    spare_lanes: bool = True


@dataclass(frozen=True)
class Applier:
    """The consumer's side of its read-ahead: how a record is applied, where its offset is
    noted once applied, and what to do when the read-ahead has room again."""

    apply: Callable[[ConsumerRecord, Envelope], Awaitable[None]]
    offsets: OffsetCommits
    on_release: Callable[[], None] | None = None


class ReadAhead:
    def __init__(self, limits: ReadAheadLimits, applier: Applier) -> None:
        if limits.limit < 1 or limits.lanes < 1:
            raise ValueError(f"the read-ahead needs room and a lane, got limit={limits.limit}, lanes={limits.lanes}")
        self.limit, self.lanes, self.retry_s = limits.limit, limits.lanes, limits.retry_s
        self.most_lanes = 2 * limits.lanes if limits.spare_lanes else limits.lanes
        self.apply, self.offsets, self.on_release = applier.apply, applier.offsets, applier.on_release
        self.waiting = 0  # records read ahead and not started
        self._keys: dict[Key, deque[Held]] = {}
        self._turns: FairTurns[Key] = FairTurns(cost_of=self._cost_of)
        self._in_turns: set[Key] = set()  # keys with a turn queued
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._applying: dict[Key, str] = {}  # the tenant of each key being applied
        self._unapplied = Unapplied()
        self._apply_s: dict[tuple[str, str], float] = {}  # (tenant, event type): its cost
        self._arrivals = itertools.count()
        self._kafka: AIOKafkaConsumer | None = None
        self._hold: FetchHold | None = None
        self._stopped = False

    def room(self) -> int:
        """How many more records it may take."""
        return max(0, self.limit - self.waiting)

    def take(self, kafka: AIOKafkaConsumer, fetched: Iterable[ConsumerRecord],
             *, to_apply: list[tuple[ConsumerRecord, Envelope]]) -> None:
        """A fetch's records: `to_apply` those this consumer handles and has not applied, in the
        order fetched; the others count as applied."""
        self._attach(kafka)
        fetched = list(fetched)
        for tp in self._unapplied.fetched(fetched):
            self._forget(tp)
        for record, envelope in to_apply:
            held = Held(record=record, envelope=envelope, arrival=next(self._arrivals), epoch=self._unapplied.hold(record))
            key = record.key if record.key is not None else UNKEYED
            self._keys.setdefault(key, deque()).append(held)
            self.waiting += 1
            self._queue_turn(key)
        for tp in {TopicPartition(record.topic, record.partition) for record in fetched}:
            self._note(tp)
        if self.waiting >= self.limit:
            self._hold_fetches()
        self._dispatch()

    async def stop(self) -> None:
        """Start nothing more and stop what runs (its records come again: they are not committed)."""
        self._stopped = True
        await stop_tasks(*self._running.values())

    def _attach(self, kafka: AIOKafkaConsumer) -> None:
        if self._kafka is not kafka:
            self._kafka, self._hold = kafka, FetchHold(kafka, self.on_release)

    def _hold_fetches(self) -> None:
        if self._hold is not None:
            self._hold.hold()

    def _queue_turn(self, key: Key) -> None:
        """Give the key a turn for its first waiting event, unless it has one or runs."""
        queue = self._keys.get(key)
        if not queue or key in self._in_turns or key in self._running:
            return
        head = queue[0].envelope
        self._turns.push(key, Turn(tenant=head.tenant_id or "", share=plan_share(head.plan_priority),
                                   rank=(JOB_RANK.get(head.job_priority, 0), queue[0].arrival)))
        self._in_turns.add(key)

    def _dispatch(self) -> None:
        while not self._stopped and (key := self._next_turn()) is not None:
            self._in_turns.discard(key)
            held = self._next_of(key)
            if held is not None:
                self._applying[key] = held.envelope.tenant_id or ""
                self._running[key] = asyncio.create_task(self._run(key, held), name=f"apply-{key!r}")
        if self.waiting <= self.limit // 2 and self._hold is not None:
            self._hold.release()

    def _next_turn(self) -> Key | None:
        """The key whose turn starts now: the next turn while a lane is free; while they are
        all taken (and fewer than twice the lanes), the next turn among the tenants with nothing
        being applied, even behind a busy tenant's turn, by one of its own turns at most (a busy
        tenant's lanes stall the virtual clock, while the other's turns go on taking it ahead);
        otherwise none."""
        if len(self._running) < self.lanes:
            return self._turns.pop()
        if len(self._running) >= self.most_lanes:
            return None
        applying = set(self._applying.values())
        return self._turns.pop(only=lambda tenant: tenant not in applying, within_a_turn=True)

    def _cost_of(self, key: Key) -> float:
        """What the key's turn costs as it comes: what its first waiting event's kind took lately."""
        queue = self._keys.get(key)
        return self._apply_s.get(_kind(queue[0].envelope), COST_FLOOR_S) if queue else COST_FLOOR_S

    def _timed(self, envelope: Envelope, seconds: float) -> None:
        kind = _kind(envelope)
        before = self._apply_s.pop(kind, None)  # and back at the end: the latest timed last
        cost = seconds if before is None else before + COST_WEIGHT * (seconds - before)
        self._apply_s[kind] = max(COST_FLOOR_S, cost)
        if len(self._apply_s) > COSTS_KEPT:
            del self._apply_s[next(iter(self._apply_s))]

    def _next_of(self, key: Key) -> Held | None:
        """The key's first waiting event that is still this consumer's to apply."""
        queue = self._keys.get(key)
        while queue:
            held = queue.popleft()
            self.waiting -= 1
            if self._ours(held):
                return held
            # Dropped unsettled: its offset stays the partition's lowest not applied until the
            # partition is fetched again here (a new epoch), or, taken by another member, is
            # no longer this consumer's to commit.
        self._keys.pop(key, None)
        return None

    def _ours(self, held: Held) -> bool:
        """Not fetched again since, and its partition still assigned here (else another member applies it)."""
        kafka, record = self._kafka, held.record
        return (self._unapplied.current(record, held.epoch) and kafka is not None
                and TopicPartition(record.topic, record.partition) in kafka.assignment())

    async def _run(self, key: Key, held: Held) -> None:
        while True:
            try:
                started = time.monotonic()
                await self.apply(held.record, held.envelope)
                self._timed(held.envelope, time.monotonic() - started)
                break
            except Exception:  # not even the DLQ took it (the broker is away): its key waits and tries again
                log.warning("applying %s failed; trying again in %.1fs", held.envelope.type, self.retry_s,
                            exc_info=True)
                await asyncio.sleep(self.retry_s)
        self._settle(held)
        del self._running[key]
        self._applying.pop(key, None)
        if not self._keys.get(key):
            self._keys.pop(key, None)
        self._queue_turn(key)
        self._dispatch()

    def _settle(self, held: Held) -> None:
        tp = self._unapplied.settle(held.record, held.epoch)
        if tp is not None:
            self._note(tp)

    def _note(self, tp: TopicPartition) -> None:
        offset = self._unapplied.committable(tp)
        if offset is not None and self._kafka is not None:
            self.offsets.reached(self._kafka, tp, offset=offset)

    def _forget(self, tp: TopicPartition) -> None:
        """The partition comes again from an earlier offset: what waits of it is read again."""
        for key, queue in list(self._keys.items()):
            kept = deque(held for held in queue if TopicPartition(held.record.topic, held.record.partition) != tp)
            self.waiting -= len(queue) - len(kept)
            if kept:
                self._keys[key] = kept
            else:
                del self._keys[key]


def _kind(envelope: Envelope) -> tuple[str, str]:
    return envelope.tenant_id or "", type(envelope.event).__name__
