"""The training lines' tables (services/ledger/training.py decides on them): each job's line,
locked with the job's transfer, the identities charged, and the photo sets seen trained."""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from services.common.contracts import JobSubmitted
from services.common.db import Conn, Statement, inserted, inserted_if_absent, updated
from services.ledger.domain import Book
from services.ledger.records import TrainingHold
from services.ledger.store.rows import rows_of

HOLD_COLUMNS = {"job_id": "uuid", "tenant_id": "text", "subject_id": "uuid", "photo_set_sha256": "text",
                "amount": "bigint", "state": "text", "charged": "bigint", "identity_id": "uuid",
                "settled_at": "timestamptz"}
SETTLED_COLUMNS = {"job_id": "uuid", "state": "text", "charged": "bigint", "identity_id": "uuid",
                   "settled_at": "timestamptz"}
TRAINED_COLUMNS = {"tenant_id": "text", "subject_id": "uuid", "photo_set_sha256": "text", "identity_id": "uuid",
                   "trained_at": "timestamptz"}


def keep_hold(book: Book, row: dict[str, Any]) -> None:
    """A job's training line as read, locked with the job's transfer (jobs_locked)."""
    book.trainings.holds[row["job_id"]] = TrainingHold(**{column: row[column] for column in HOLD_COLUMNS})


async def read_training(conn: Conn, book: Book, *, subjects: Iterable[tuple[str, UUID]] = ()) -> None:
    """For the subjects named (tenant, subject) and those of the training lines the book holds,
    the photo sets seen trained and the identities charged."""
    held = [(h.tenant_id, h.subject_id) for h in book.trainings.holds.values()]
    named = sorted(set(subjects) | set(held))
    if not named:
        return
    tenants, subject_ids = [t for t, _ in named], [s for _, s in named]
    for row in await rows_of(conn, TRAINED_AND_CHARGED, params=[tenants, subject_ids, tenants, subject_ids]):
        if row["kind"] == "trained":
            book.trainings.trained.add((row["tenant_id"], row["subject_id"], row["photo_set_sha256"]))
        else:
            book.trainings.charged.add((row["tenant_id"], row["subject_id"], row["identity_id"]))


TRAINED_AND_CHARGED = (
    "SELECT 'trained' AS kind, tenant_id, subject_id, photo_set_sha256, NULL::uuid AS identity_id"
    " FROM identities_trained WHERE (tenant_id, subject_id) IN (SELECT * FROM unnest(%b::text[], %b::uuid[]))"
    " UNION ALL SELECT 'charged', tenant_id, subject_id, NULL, identity_id FROM training_holds"
    " WHERE state = 'posted' AND (tenant_id, subject_id) IN (SELECT * FROM unnest(%b::text[], %b::uuid[]))")


def training_written(book: Book) -> tuple[list[Statement | None], list[Statement | None]]:
    """The statements that write the batch's training lines: new rows (with the batch's other
    new rows), then the lines it settled (with its other changes)."""
    trainings = book.trainings
    new = [inserted("training_holds", HOLD_COLUMNS, rows=[tuple(getattr(h, c) for c in HOLD_COLUMNS)
                                                     for h in trainings.new_holds]),
           inserted_if_absent("identities_trained", TRAINED_COLUMNS, rows=trainings.new_trained)]
    settled = [h for h in trainings.changed_holds if h not in trainings.new_holds]
    changes = [updated("training_holds", SETTLED_COLUMNS, rows=[tuple(getattr(h, c) for c in SETTLED_COLUMNS)
                                                           for h in settled])]
    return new, changes


def training_subjects(events: Iterable[object]) -> list[tuple[str, UUID]]:
    """The (tenant, subject) pairs of the jobs a batch submits, whose trained photo sets it reads."""
    return [(e.job.tenant_id, e.job.subject.subject_id) for e in events
            if isinstance(e, JobSubmitted) and e.job.subject is not None]


async def photo_set_trained(conn: Conn, tenant_id: str, *, subject: tuple[str, str]) -> bool:
    """Whether an identity was seen trained from the subject's photo set (`subject`: its id and
    the photo set's digest), for a quote."""
    subject_id, photo_set = subject
    row = await (await conn.execute("SELECT 1 FROM identities_trained WHERE tenant_id = %s AND subject_id = %s"
                                    " AND photo_set_sha256 = %s", [tenant_id, subject_id, photo_set])).fetchone()
    return row is not None
