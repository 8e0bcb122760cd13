"""Fetching when there is something to fetch, on a broker that holds every fetch for its whole
wait (Tansu, the embedded broker).

Apache Kafka answers a consumer's fetch as soon as records arrive, so a consumer waits in a
long fetch and pays nothing. Tansu answers only when the wait is over, so a consumer either
waits long (every hop takes that long) or polls often (each poll costs its CPU and the
broker's, idle or not). Here the relays say when they published: after a pass, a relay
NOTIFYs `bus_channel(namespace)` with the topic, in the transaction that marks the rows
published. A consumer keeps its partitions paused while nothing is said; a word about one of
its topics resumes that topic's partitions, for short fetches, until nothing has come for
`linger`; and every `idle_fetch_s` it fetches everything once, for records that came
unannounced (written by another producer, or while the listening connection was away).

A partition is paused only when nothing fetched waits to be handled and no batch is being
handled: records buffered for a paused partition would be dropped and fetched again.
"""

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.db import listen

log = logging.getLogger(__name__)


def bus_channel(namespace: str) -> str:
    """The channel the relays of a namespace announce their topics on."""
    return f"genline_bus_{namespace}"


class FetchWaker:
    def __init__(self, database_url: str, namespace: str, topics: list[str], linger_s: float, idle_fetch_s: float,
                 retry_s: float = 5.0) -> None:
        self.database_url, self.namespace, self.topics = database_url, namespace, set(topics)
        self.linger_s, self.idle_fetch_s, self.retry_s = linger_s, idle_fetch_s, retry_s
        self.kafka: AIOKafkaConsumer | None = None
        self.handling = 0
        self._fetching_until = 0.0
        self._pause_at: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self, kafka: AIOKafkaConsumer) -> None:
        """Start with every partition fetching (what came meanwhile), then wait for words."""
        self.kafka = kafka
        self._tasks = [asyncio.create_task(listen(self.database_url, bus_channel(self.namespace), self._announced,
                                                  self.retry_s), name="bus-wake-listen"),
                       asyncio.create_task(self._fetch_now_and_then(), name="bus-wake-idle")]
        self.fetch(self.topics)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pause_at is not None:
            self._pause_at.cancel()

    def _announced(self, topic: str | None) -> None:
        # None: listening (re)started, and words may have been missed meanwhile.
        self.fetch(self.topics if topic is None else self.topics & {topic})

    async def _fetch_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self.idle_fetch_s)
            self.fetch(self.topics)

    def fetch(self, topics: set[str]) -> None:
        """Resume these topics' partitions; pause them again once nothing came for a while."""
        if not topics or self.kafka is None:
            return
        with contextlib.suppress(Exception):  # not assigned yet, or rebalancing: the next word
            self.kafka.resume(*self._assigned(topics))
        self.linger()

    def linger(self) -> None:
        """Keep fetching for `linger_s` from now."""
        self._fetching_until = time.monotonic() + self.linger_s
        if self._pause_at is None:
            self._pause_at = asyncio.get_running_loop().call_later(self.linger_s, self._pause_if_quiet)

    def _pause_if_quiet(self) -> None:
        self._pause_at = None
        left = self._fetching_until - time.monotonic()
        if left > 0 or self.handling or self._buffered():
            self._pause_at = asyncio.get_running_loop().call_later(max(left, self.linger_s), self._pause_if_quiet)
            return
        with contextlib.suppress(Exception):
            self.kafka.pause(*self._assigned(self.topics))

    def _assigned(self, topics: set[str]) -> list[TopicPartition]:
        return [tp for tp in self.kafka.assignment() if tp.topic in topics]

    def _buffered(self) -> bool:
        """Fetched records not handed over yet (aiokafka keeps them in its fetcher)."""
        fetcher = getattr(self.kafka, "_fetcher", None)
        return bool(getattr(fetcher, "_records", None))
