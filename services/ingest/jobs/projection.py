"""How changes to jobs' views are committed, whoever made them (the events of other
services, or the sweeper): receipts issued for the jobs a change shows final for the first
time, a JobFinished announced for each, and every view written once."""

from collections.abc import Callable
from datetime import datetime

import psycopg

from services.common import telemetry
from services.common.contracts import JobFinished, JobProgressed
from services.common.db import Statement
from services.ingest import store
from services.ingest.jobs.domain import finished, progressed
from services.ingest.receipts.document import Signer
from services.ingest.receipts.issuing import issue_receipts

# What commit_changes publishes its announcements with: a statement (Publish.statement's)
# that it sends with its own last write.
Announce = Callable[[list[tuple[JobFinished | JobProgressed, int]]], Statement | None]


async def commit_changes(conn: psycopg.AsyncConnection, changes: list[store.Change], signer: Signer,
                         now: datetime, announce: Announce | None = None
                         ) -> list[tuple[JobFinished | JobProgressed, int]]:
    """Write the changes in the caller's transaction; the JobFinished (and JobProgressed)
    events to publish with it, each with the index of the change that finished its job (or
    made its progress due), written with the changes by `announce` if given."""
    changes, receipts = await issue_receipts(conn, changes, signer, now)
    announcements: list[tuple[JobFinished | JobProgressed, int]] = []
    for index, change in enumerate(changes):
        if progress := progressed(change.before, change.after):
            announcements.append((progress, index))
        if announcement := finished(change.before, change.after):
            announcements.append((announcement, index))
            telemetry.JOBS_FINISHED.labels(change.after.state).inc()
    # One write for every job, tenants' counters in order, the receipts and the announcements.
    await store.record_changes(conn, changes, [receipts, announce(announcements) if announce else None])
    return announcements
