"""The sweeper: no job waits for ever, also when events were lost.

Every `sweep_interval_s` one ingest replica (the one holding a transaction-level advisory
lock; the others skip the round) looks at the non-final jobs that have not changed for a
while and lets `sweep_rules.sweep` decide: an overdue job is asked to end (JobCancelRequested,
which delivery answers with JobCanceled unless it delivered first); a job whose request
got no answer in time is ended here (JobClosed), and the ledger releases its credits.
Expired idempotency keys are deleted on the way.
"""

import logging
from datetime import UTC, datetime

from services.common.rounds import PeriodicRound, exclusive_round
from services.common.runtime import ServiceRuntime
from services.ingest.jobs import store, sweep_rules
from services.ingest.jobs.finishing import commit_changes
from services.ingest.receipts import Issuance, ReceiptSigner
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


class Sweeper(PeriodicRound):
    def __init__(self, runtime: ServiceRuntime, settings: IngestSettings, *, signer: ReceiptSigner) -> None:
        self.runtime, self.settings, self.signer = runtime, settings, signer
        self.policy = sweep_rules.SweepPolicy(settings.state_deadline_s, settings.deadline_grace_s,
                                              settings.cancel_answer_timeout_s)
        self.interval_s, self.task_name = settings.sweep_interval_s, "ingest-sweeper"

    async def sweep_once(self, now: datetime | None = None) -> int:
        """One round; the number of events it published (0 when another replica holds the round)."""
        now = now or datetime.now(UTC)
        published = 0
        async with exclusive_round(self.runtime.pool, self.runtime.name, round_name="sweeper") as conn:
            if conn is None:
                return 0
            changes: list[store.Change] = []
            for view in await store.quiet_open_views(conn, now, quiet_s=self.policy.shortest_wait_s,
                                                     limit=self.settings.sweep_batch_size):
                after, event = sweep_rules.sweep(view, now, policy=self.policy)
                if event is None:
                    continue
                changes.append(store.Change(before=view, after=after, event=event, at=now))
                await self.runtime.emit(conn, event)
                published += 1
            for announcement, _ in await commit_changes(conn, changes, issuance=Issuance(self.signer, now)):
                await self.runtime.emit(conn, announcement)
            await store.forget_expired_keys(conn, self.settings.idempotency_key_ttl_s)
        if published:
            log.warning("sweeper moved %d stuck jobs on", published)
            self.runtime.relay.notify()
        return published
