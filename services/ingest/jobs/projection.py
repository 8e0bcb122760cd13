"""How changes to jobs' views are committed, whoever made them (the events of other
services, the sweeper, a client's request): receipts issued for the jobs a change shows
final for the first time, a JobFinished announced for each, every view written once, and
what each change tells the job's log appended with it."""

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from services.common import telemetry
from services.common.contracts import JobFinished, JobProgressed
from services.common.db import Conn, Statement
from services.ingest import store
from services.ingest.domain import Change, JobView
from services.ingest.jobs.domain import finished, progressed
from services.ingest.jobs.job_log import entries_for, first_entries
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


async def record_submitted(conn: Conn, view: JobView, *, at: datetime) -> None:
    """Store a new job's view and open its log, in the caller's transaction."""
    entries = first_entries(view, at)
    if not entries:
        await store.insert_job(conn, view)
        return
    await store.append_new_job(conn, view, entries=entries)


async def record(conn: Conn, change: Change) -> None:
    """Store the view a change moved a job to and append what it tells clients to the job's
    log, in the caller's transaction, which holds the job's row."""
    await record_changes(conn, [change])


async def record_changes(conn: Conn, changes: list[Change],
                         *, also: Sequence[Statement | None] = ()) -> None:
    """Store what a series of events did to existing jobs (a job's changes in the order they
    happened, each `before` the previous `after`): each job's last view written once, in
    one statement for every job, with every entry appended at once and `also` (writes to
    other tables: receipts, Publish.statement's). The caller holds the jobs' rows."""
    first: dict[UUID, JobView] = {}
    last: dict[UUID, JobView] = {}
    for change in changes:
        first.setdefault(change.before.id, change.before)
        last[change.after.id] = change.after
    views = [view for job_id, view in last.items() if view != first[job_id]]
    entries = [(change.after, entry) for change in changes
               for entry in entries_for(change)]
    if entries:
        await store.append_log(conn, entries, views=views, also=also)
    else:
        await store.write_views(conn, views, also=also)
