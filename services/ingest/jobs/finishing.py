"""How changes that may end jobs are committed (other services' events, the sweeper): receipts
issued for the jobs a change shows final for the first time, a JobFinished announced for each
(and a JobProgressed when progress is due), then the changes recorded (projection.py) with the
receipts and the announcements in one write."""

from collections.abc import Callable

from services.common import telemetry
from services.common.contracts import JobFinished, JobProgressed
from services.common.db import Conn, Statement
from services.ingest.jobs.domain import finished, progressed
from services.ingest.jobs.projection import record_changes
from services.ingest.jobs.view import Change
from services.ingest.receipts import Issuance, issue_receipts

# What commit_changes publishes its announcements with: a statement (Publish.statement's)
# that it sends with its own last write.
Announce = Callable[[list[tuple[JobFinished | JobProgressed, int]]], Statement | None]


async def commit_changes(conn: Conn, changes: list[Change], *, issuance: Issuance,
                         announce: Announce | None = None) -> list[tuple[JobFinished | JobProgressed, int]]:
    """Write the changes in the caller's transaction, with the receipts of the jobs they
    finish; the JobFinished (and JobProgressed) events to publish with it, each with the index
    of the change that finished its job (or made its progress due), written with the changes
    by `announce` if given."""
    changes, receipts = await issue_receipts(conn, changes, issuance=issuance)
    announcements: list[tuple[JobFinished | JobProgressed, int]] = []
    for index, change in enumerate(changes):
        if progress := progressed(change.before, change.after):
            announcements.append((progress, index))
        if announcement := finished(change.before, change.after):
            announcements.append((announcement, index))
            telemetry.JOBS_FINISHED.labels(change.after.state).inc()
    # One write for every job, tenants' counters in order, the receipts and the announcements.
    await record_changes(conn, changes, also=[receipts, announce(announcements) if announce else None])
    return announcements
