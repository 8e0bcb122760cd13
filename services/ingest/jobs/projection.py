"""How changes to jobs' views are recorded, whoever made them (the events of other services,
the sweeper, a client's request, a batch cancelled): every view written once, and what each
change tells the job's log appended with it. A change that may end a job is committed through
finishing.py, which issues its receipt and announces it first."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from services.common.db import Conn, Statement
from services.ingest.jobs import store
from services.ingest.jobs.job_log import entries_for, first_entries
from services.ingest.jobs.view import Change, JobView


async def record_submitted(conn: Conn, view: JobView, *, at: datetime, submission: store.Submission) -> None:
    """Store a new job's view and open its log, with what its submission writes (its data key,
    its Idempotency-Key, its event), in the caller's transaction."""
    await store.write_submission(conn, view, entries=first_entries(view, at), submission=submission)


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
