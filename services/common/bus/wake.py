"""Fetching when there is something to fetch, on a broker that holds every fetch for its whole
wait (Tansu, the embedded broker).

Apache Kafka answers a consumer's fetch as soon as records arrive, so a consumer waits in a
long fetch and pays nothing. Tansu answers only when the wait is over, so a consumer either
waits long (every hop takes that long) or polls often (each poll costs its CPU and the
broker's, idle or not). Here the relays say when they published: after a pass, a relay NOTIFYs
`bus_channel(namespace)` with each topic it published to, in the transaction that marks its
rows published. A consumer's partitions stay paused while nothing is said; a word about one of
its topics resumes that topic's partitions, and they fetch, with a short wait, until a fetch
that asked for every announced topic after its word comes back empty, or brings records that
reach every partition's end (its high watermark) and are handed over before another word comes.
Every `idle_fetch_s` everything is fetched once, for records that came unannounced (written by
another producer, or while the listening connection was away).

A word also says where each partition published to ends: the offset after the last record the
pass published there (`announcement`). A partition whose position is short of an end announced
for it is never paused, whatever the fetches seemed to say, until it gets there: a fetch that
was sent after the word and came back without its records (one that left the partition out
because records of it were still buffered, a highwater seen before them, a fetch that failed, a
broker that shows a record a moment after it acknowledged it) would otherwise leave them to the
idle fetch, up to `idle_fetch_s` on that hop. An end not reached by the next idle fetch is
dropped, so one that can never be reached (a broker that lost its log) costs fetches for that
long at most.

Partitions are paused only while nothing fetched waits to be handled: records buffered for a
paused partition would be dropped, to be fetched again only at the next word. So they pause
right after an empty fetch, or right after the consumer took the records of the last fetch
(the waker wraps its `getmany`). (aiokafka has no hook after a fetch; the waker wraps its
fetcher's `_proc_fetch_request`, whose result says whether the fetch brought records.)
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common import telemetry
from services.common.listening import Channel, listen
from services.common.supervision import stop_tasks, supervise

log = logging.getLogger(__name__)


def bus_channel(namespace: str) -> str:
    """The channel the relays of a namespace announce their topics on."""
    return f"genline_bus_{namespace}"


# A relay's word after a pass, one per topic it published to: `<topic> <partition>:<end>,…`,
# each end the offset after the last record the pass published to that partition
# (outbox.MARK_AND_ANNOUNCE builds it in SQL, with these separators).
TOPIC_SEPARATOR, PARTITION_SEPARATOR, END_SEPARATOR = " ", ",", ":"


def announcement(topic: str, ends: dict[int, int]) -> str:
    return topic + TOPIC_SEPARATOR + PARTITION_SEPARATOR.join(f"{p}{END_SEPARATOR}{end}" for p, end in ends.items())


def announced(payload: str) -> tuple[str, dict[TopicPartition, int]]:
    """The topic a word names, and the end it gives each partition (none from a word that
    names only a topic, as relays said before they gave ends)."""
    topic, _, where = payload.partition(TOPIC_SEPARATOR)
    ends: dict[TopicPartition, int] = {}
    for pair in filter(None, where.split(PARTITION_SEPARATOR)):
        partition, _, end = pair.partition(END_SEPARATOR)
        if partition.isdigit() and end.isdigit():
            ends[TopicPartition(topic, int(partition))] = int(end)
    return topic, ends


@dataclass(frozen=True, kw_only=True)
class Waking:
    """How a consumer hears the relays: on its topic namespace's channel, fetching everything
    at least every `idle_fetch_s`, listening again `retry_s` after a lost connection; its
    fetches counted under its service's name."""

    namespace: str
    idle_fetch_s: float
    service: str = ""
    retry_s: float = 5.0


class FetchWaker:
    def __init__(self, database_url: str, topics: list[str], *, waking: Waking) -> None:
        self.database_url, self.namespace, self.topics = database_url, waking.namespace, set(topics)
        self.fetched = {brought: telemetry.BUS_FETCHES.labels(waking.service, brought) for brought in ("yes", "no")}
        self.idle_fetch_s, self.retry_s = waking.idle_fetch_s, waking.retry_s
        self.kafka: AIOKafkaConsumer | None = None
        # Topics announced and not fetched since, with when they were announced: a fetch
        # covers one only if it asked for the topic and was sent after the word.
        self._announced: dict[str, float] = {}
        # Words heard so far, and how many had been heard when the last fetch that brought
        # records came back with no word pending: once those records are handed over, the
        # partitions pause if they reach the broker's end and no word came meanwhile
        # (`_pause_if_drained`).
        self._words = 0
        self._drained_at: int | None = None
        # The end each partition was announced to reach, and when, while this consumer's
        # position is short of it: such a partition is not paused (`_awaited`).
        self._ends: dict[TopicPartition, tuple[int, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, kafka: AIOKafkaConsumer) -> None:
        """Watch the consumer's fetches, and the relays' words; everything is fetched first."""
        self.kafka = kafka
        fetcher = kafka._fetcher
        fetcher._proc_fetch_request = self._watching(kafka, fetcher._proc_fetch_request)
        kafka.getmany = self._pausing_when_drained(kafka.getmany)
        channel = Channel(self.database_url, bus_channel(self.namespace), self.retry_s)
        self._tasks = [supervise("bus-wake-listen", lambda: listen(channel, self._heard)),
                       supervise("bus-wake-idle", self._fetch_now_and_then)]
        self.fetch(self.topics)

    async def stop(self) -> None:
        await stop_tasks(*self._tasks)

    def _watching(self, kafka: AIOKafkaConsumer, fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def fetch_and_see(assignment: Any, node_id: int, request: Any) -> Any:
            sent_at = time.monotonic()
            brought = await fetch(assignment, node_id, request)
            self.fetched["yes" if brought else "no"].inc()
            assigned = {tp.topic for tp in kafka.assignment()}
            for topic, _ in request.topics:
                if self._announced.get(topic, sent_at) < sent_at:
                    del self._announced[topic]
            for topic in set(self._announced) - assigned:  # handed to another member meanwhile
                del self._announced[topic]
            if self._announced:  # asked for after this fetch was built: once it is done, fetch them
                task = asyncio.current_task()
                if task is not None:  # always: this runs in the fetcher's task
                    task.add_done_callback(lambda _: self._resume(set(self._announced)))
            elif not brought:
                self._pause_if_nothing_waits()
            else:
                self._drained_at = self._words
            return brought

        return fetch_and_see

    def _pausing_when_drained(self, getmany: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def getmany_then_pause(*args: Any, **kwargs: Any) -> Any:
            handed = await getmany(*args, **kwargs)
            self._pause_if_drained()
            return handed

        return getmany_then_pause

    def _pause_if_drained(self) -> None:
        """Once the records of a fetch that left nothing unfetched are handed over, pause: a
        fetch after them would come back empty, unless a word came since, which resumes.
        Each word otherwise cost every consumer of its topic one empty fetch."""
        if self._drained_at != self._words or self._announced or self._buffered() or self.kafka is None:
            return
        assignment = self.kafka._subscription.subscription
        if assignment is None:
            return
        mine = [tp for tp in self._assigned(self.topics) if not self._awaited(tp)]
        states = [assignment.assignment.state_value(tp) for tp in mine]
        if all(state.has_valid_position and state.highwater is not None and state.position >= state.highwater
               for state in states):
            self._drained_at = None
            self._pause_if_nothing_waits()

    def _heard(self, payload: str | None) -> None:
        if payload is None:  # listening (re)started, and words may have been missed meanwhile
            self.fetch(self.topics)
            return
        topic, ends = announced(payload)
        if topic not in self.topics:
            return
        mine, now = self._assigned({topic}), time.monotonic()
        for tp, end in ends.items():
            if tp in mine:
                self._ends[tp] = (max(end, self._ends.get(tp, (end, now))[0]), now)
        self.fetch({topic})

    async def _fetch_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self.idle_fetch_s)
            self._forget_ends_before(time.monotonic() - self.idle_fetch_s)
            self.fetch(self.topics)

    def _forget_ends_before(self, moment: float) -> None:
        """Ends announced before `moment` and not reached yet: the fetch that follows looks at
        everything anyway, and an end that cannot be reached must not keep a partition
        fetching for ever."""
        for tp, (_, heard_at) in list(self._ends.items()):
            if heard_at < moment:
                del self._ends[tp]

    def _awaited(self, tp: TopicPartition) -> bool:
        """Whether records announced on this partition have not reached this consumer yet."""
        if tp not in self._ends:
            return False
        subscription = self.kafka._subscription.subscription if self.kafka is not None else None
        if subscription is None or subscription.assignment is None or tp not in subscription.assignment.tps:
            del self._ends[tp]  # handed to another member: theirs to wait for
            return False
        state = subscription.assignment.state_value(tp)
        if state.has_valid_position and state.position >= self._ends[tp][0]:
            del self._ends[tp]
            return False
        return True

    def fetch(self, topics: set[str]) -> None:
        """Fetch these topics until a fetch sent from now on comes back empty."""
        if self.kafka is None:
            return
        self._words += 1
        now, mine = time.monotonic(), {tp.topic for tp in self._assigned(topics)}
        for topic in mine:  # a topic of which no partition is this member's is another's to fetch
            self._announced[topic] = now
        self._resume(mine)

    def _resume(self, topics: set[str]) -> None:
        if topics and self.kafka is not None:
            with contextlib.suppress(Exception):  # not assigned yet, or rebalancing: the next word
                self.kafka.resume(*self._assigned(topics))
                # The fetcher may be waiting on a fetch to the same broker that left these
                # partitions out: have it look again as soon as that one is back.
                fetcher = self.kafka._fetcher
                fetcher._notify(fetcher._wait_consume_future)

    def _pause_if_nothing_waits(self) -> None:
        if self.kafka is not None and not self._buffered():
            with contextlib.suppress(Exception):
                self.kafka.pause(*(tp for tp in self._assigned(self.topics) if not self._awaited(tp)))

    def _assigned(self, topics: set[str]) -> list[TopicPartition]:
        return [tp for tp in self.kafka.assignment() if tp.topic in topics] if self.kafka is not None else []

    def _buffered(self) -> bool:
        """Fetched records not handed over yet (aiokafka keeps them in its fetcher)."""
        return self.kafka is not None and bool(getattr(self.kafka._fetcher, "_records", None))
