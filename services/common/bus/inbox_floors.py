"""The floors a consumer's inbox forgets below: the highest floor each journal announced on
its topic (journal.py), kept only on the topics whose journals count the consumer's group
among their readers, and the inbox pruned below them every little while (inbox.py)."""

import asyncio
import logging
from datetime import UTC, datetime
from functools import partial

from services.common.bus.inbox import prune_inbox
from services.common.db import Pool
from services.common.supervision import every, stop_tasks, supervise

log = logging.getLogger(__name__)

INBOX_PRUNE_INTERVAL_S = 60.0
EARLIEST = datetime.min.replace(tzinfo=UTC)


class InboxFloors:
    """The highest floor seen on each of `topics` (ServiceRuntime.consume sets them), and the
    pruning of the inbox below them."""

    def __init__(self, service: str, pool: Pool) -> None:
        self.service, self.pool = service, pool
        self.floors: dict[str, datetime] = {}
        self.topics: set[str] = set()
        self._pruning: asyncio.Task[None] | None = None

    def saw(self, topic: str, floor: datetime | None) -> None:
        """An envelope on `topic` carried `floor` (None: none): the topic's floor rises to it."""
        if floor is not None and topic in self.topics and floor > self.floors.get(topic, EARLIEST):
            self.floors[topic] = floor

    def start_pruning(self) -> None:
        """Forget, every little while, the applied events that can never arrive again."""
        self._pruning = supervise(f"{self.service}-inbox-prune",
                                  partial(every, INBOX_PRUNE_INTERVAL_S, self.prune_inbox, what=f"{self.service}-inbox-prune"))

    async def stop_pruning(self) -> None:
        await stop_tasks(self._pruning)
        self._pruning = None

    async def prune_inbox(self) -> int:
        """Forget the applied events below their topic's floor (inbox.py); returns how many."""
        if not self.floors:
            return 0
        async with self.pool.connection() as conn:
            pruned = await prune_inbox(conn, dict(self.floors))
        if pruned:
            log.info("the inbox forgot %d events below their journals' floors", pruned)
        return pruned
