"""Where a consumer stands on its partitions: the offsets of what it applied, committed every
interval (OffsetCommits); a consumer past a partition's end reading it again from the beginning
(EndWatch); a batch taken as soon as a fetch brings it, and sought back to come again; for a
consumer that reads ahead (read_ahead.py), the lowest offset of each partition not applied yet
(Unapplied) and its partitions held paused while its buffer is full (FetchHold)."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from services.common.supervision import stop_tasks, supervise

log = logging.getLogger(__name__)


class OffsetCommits:
    """The offsets of the records a consumer has applied, committed to the broker every
    interval instead of after each batch (on the embedded broker a commit is an object-store
    write per partition, and it delayed every hop). Nothing is traded for it: a record is
    noted only once it is applied, so a crash or a rebalance can only deliver again what the
    inbox then skips, in the order it came. `flush()` commits what is noted, before a stop."""

    def __init__(self, service: str, interval_s: float) -> None:
        self.service, self.interval_s = service, interval_s
        self._pending: dict[TopicPartition, int] = {}
        self._kafka: AIOKafkaConsumer | None = None  # the consumer the records came from
        self._task: asyncio.Task[None] | None = None
        self._flushed = False

    def applied(self, kafka: AIOKafkaConsumer, records: Iterable[ConsumerRecord]) -> None:
        self._kafka = kafka
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._pending[tp] = max(self._pending.get(tp, 0), record.offset + 1)
        if not self._flushed and (self._task is None or self._task.done()):
            self._task = supervise(f"{self.service}-offset-commits", self._every_interval)

    def reached(self, kafka: AIOKafkaConsumer, tp: TopicPartition, *, offset: int) -> None:
        """Everything of `tp` below `offset` is applied (a consumer that applies out of order
        says so for its lowest record not applied yet, Unapplied)."""
        self._kafka = kafka
        self._pending[tp] = offset
        if not self._flushed and (self._task is None or self._task.done()):
            self._task = supervise(f"{self.service}-offset-commits", self._every_interval)

    async def _every_interval(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval_s)
            await self.commit()

    async def commit(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending or self._kafka is None:
            return
        assigned = self._kafka.assignment()  # a partition handed to another member is theirs to commit
        offsets = {tp: offset for tp, offset in pending.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except KafkaError as exc:  # the broker is away, or the group is rebalancing: try again later
            log.warning("committing offsets failed, will retry: %s", exc)
            for tp, offset in offsets.items():
                self._pending[tp] = max(self._pending.get(tp, 0), offset)

    async def flush(self) -> None:
        """Commit what is noted, once, as the service stops; a batch still being applied
        meanwhile is not committed after it (the next start delivers it again)."""
        self._flushed = True
        await stop_tasks(self._task)
        await self.commit()


class EndWatch:
    """A consumer standing past a partition's end (its broker lost its log without the
    journal's gap, as a restored Apache Kafka cluster would) reads that partition from its
    beginning: waiting for the new log to reach the old offsets would skip its first records.
    The inbox skips what was applied already."""

    def __init__(self, service: str, interval_s: float) -> None:
        self.service, self.interval_s = service, interval_s
        self._kafka: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def watch(self, kafka: AIOKafkaConsumer) -> None:
        self._kafka = kafka
        if self._task is None:
            self._task = supervise(f"{self.service}-end-watch", self._every_interval)

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(KafkaError, AssertionError):  # rebalancing: look again later
                await self.start_over_past_the_end()

    async def start_over_past_the_end(self) -> list[TopicPartition]:
        kafka = self._kafka
        if kafka is None:
            return []
        restarted: list[TopicPartition] = []
        for tp in kafka.assignment():
            end = kafka.highwater(tp)
            if end is not None and await kafka.position(tp) > end:
                restarted.append(tp)
        if restarted:
            log.warning("standing past the end of %s (the broker lost its log): reading them from the beginning",
                        restarted)
            await kafka.seek_to_beginning(*restarted)
        return restarted

    async def stop(self) -> None:
        await stop_tasks(self._task)


async def take_as_they_come(subscriber: Any, consumer: AIOKafkaConsumer,
                            *, room: Callable[[], int] | None = None) -> tuple[ConsumerRecord, ...]:
    """FastStream's batch subscriber, but without its sleep after a wait that found nothing:
    aiokafka hands records over as soon as a fetch brings them, so the wait costs nothing,
    while records that came during the sleep waited it out (up to a whole batch timeout more
    on every hop). With `room`, no more records than it says (a read-ahead's bound)."""
    most = subscriber.max_records if room is None else max(1, min(subscriber.max_records, room()))
    batches = await consumer.getmany(timeout_ms=subscriber.batch_timeout_ms, max_records=most)
    return tuple(chain.from_iterable(batches.values()))


def rewind(kafka: AIOKafkaConsumer, records: Iterable[ConsumerRecord]) -> None:
    """Seek each partition of a batch back to its first record, so that the batch comes again."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    for tp, offset in first.items():
        kafka.seek(tp, offset)


class Unapplied:
    """For a consumer that applies a partition's records out of order: the records fetched and
    not applied yet, by partition, and so the offset that may be committed, the lowest of them
    (or, with none, the one after the last fetched). A crash then delivers again what was not
    applied, and what was applied after it, which the inbox skips. A partition whose records
    come again from below what was fetched before (a rebalance gave it back at its committed
    offset, or its broker lost its log: EndWatch) starts a new epoch: what was held of it
    before counts for nothing, since it is fetched again."""

    def __init__(self) -> None:
        self._held: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._epoch: dict[TopicPartition, int] = {}

    def fetched(self, records: Iterable[ConsumerRecord]) -> set[TopicPartition]:
        """Note a fetch's records (held or not); returns the partitions sought back."""
        sought_back: set[TopicPartition] = set()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if record.offset < self._next.get(tp, record.offset):
                sought_back.add(tp)
                self._held[tp] = set()
                self._epoch[tp] = self._epoch.get(tp, 0) + 1
            self._next[tp] = record.offset + 1
        return sought_back

    def hold(self, record: ConsumerRecord) -> int:
        """The record waits to be applied; returns its partition's epoch, for `settle`."""
        tp = TopicPartition(record.topic, record.partition)
        self._held.setdefault(tp, set()).add(record.offset)
        return self._epoch.get(tp, 0)

    def settle(self, record: ConsumerRecord, epoch: int) -> TopicPartition | None:
        """The record is applied (or dropped); returns its partition, unless it was of an epoch past."""
        tp = TopicPartition(record.topic, record.partition)
        if epoch != self._epoch.get(tp, 0):
            return None
        self._held.get(tp, set()).discard(record.offset)
        return tp

    def current(self, record: ConsumerRecord, epoch: int) -> bool:
        return epoch == self._epoch.get(TopicPartition(record.topic, record.partition), 0)

    def committable(self, tp: TopicPartition) -> int | None:
        """The offset below which everything of `tp` is applied; None before its first fetch."""
        held = self._held.get(tp)
        return min(held) if held else self._next.get(tp)


class FetchHold:
    """A consumer's partitions held paused while what it read ahead is all it may hold: the
    rest of its backlog stays in the broker, where it counts as the group's lag. Whoever else
    would resume them meanwhile (the waker, wake.py, on a relay's word) is kept from it: the
    consumer's `resume` does nothing while held. `on_release`, if given, runs once the hold
    ends (the waker fetches then, as after a word: the partitions it had paused while idle
    pause again at the first empty fetch)."""

    def __init__(self, kafka: AIOKafkaConsumer, on_release: Callable[[], None] | None = None) -> None:
        self.kafka, self.on_release = kafka, on_release
        self.held = False
        self._resume = kafka.resume
        kafka.resume = self._resume_unless_held

    def _resume_unless_held(self, *partitions: TopicPartition) -> None:
        if not self.held:
            self._resume(*partitions)

    def hold(self) -> None:
        """Pause every assigned partition (again: a rebalance hands partitions over unpaused)."""
        self.held = True
        with contextlib.suppress(Exception):  # rebalancing: the next batch holds again
            self.kafka.pause(*self.kafka.assignment())

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(Exception):
            self._resume(*self.kafka.assignment())
        if self.on_release is not None:
            self.on_release()
