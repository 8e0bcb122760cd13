"""The subjects tables: a tenant's subjects and every photo offered to each, with its verdict
(services/ingest/subjects/ judges them, seals what is kept and announces the changes)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.common.db import Conn

# A subject's row with its photos counted.
SUBJECT_ROW = (
    "SELECT s.*, (SELECT count(*) FROM subject_photos p WHERE p.subject_id = s.id AND p.accepted) AS photos_accepted,"
    " (SELECT count(*) FROM subject_photos p WHERE p.subject_id = s.id AND NOT p.accepted) AS photos_refused"
    " FROM subjects s")


@dataclass(frozen=True, kw_only=True)
class SubjectRow:
    id: UUID
    tenant_id: str
    kind: str
    name: str
    keep: bool
    trigger_word: str


async def insert_subject(conn: Conn, subject: SubjectRow) -> None:
    await conn.execute(
        "INSERT INTO subjects (id, tenant_id, kind, name, state, keep, trigger_word)"
        " VALUES (%s, %s, %s, %s, 'screening', %s, %s)",
        [subject.id, subject.tenant_id, subject.kind, subject.name, subject.keep, subject.trigger_word])


async def read_subject(conn: Conn, subject_id: UUID, *, tenant_id: str | None, lock: bool = False) -> dict[str, Any] | None:
    """The subject with its photos counted (the tenant's only, when `tenant_id` is given);
    `lock` holds its row for the transaction."""
    if lock:
        locked = await (await conn.execute("SELECT id FROM subjects WHERE id = %s FOR UPDATE", [subject_id])).fetchone()
        if locked is None:
            return None
    row: dict[str, Any] | None = await (await conn.execute(
        f"{SUBJECT_ROW} WHERE s.id = %s AND (%s::text IS NULL OR s.tenant_id = %s)",
        [subject_id, tenant_id, tenant_id])).fetchone()
    return row


async def subject_photos(conn: Conn, subject_id: UUID) -> list[dict[str, Any]]:
    """Every photo offered to the subject, in order."""
    return await (await conn.execute("SELECT * FROM subject_photos WHERE subject_id = %s ORDER BY n",
                                     [subject_id])).fetchall()


async def accepted_verdicts(conn: Conn, subject_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """The verdicts of each subject's accepted photos (`accepted`, `verdict`), in order: what a
    page of subjects shows of its photos (`waived_checks`)."""
    rows = await (await conn.execute("SELECT subject_id, accepted, verdict FROM subject_photos"
                                     " WHERE subject_id = ANY(%s) AND accepted ORDER BY subject_id, n",
                                     [subject_ids])).fetchall()
    verdicts: dict[UUID, list[dict[str, Any]]] = {}
    for row in rows:
        verdicts.setdefault(row["subject_id"], []).append(row)
    return verdicts


@dataclass(frozen=True, kw_only=True)
class PhotoRow:
    """A photo offered to a subject, as its row keeps it (only an accepted one is stored)."""

    subject_id: UUID
    n: int
    sha256: str
    verdict: dict[str, Any]
    object_key: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    fingerprint: str | None = None
    embedding: bytes | None = None


async def insert_photos(conn: Conn, photos: list[PhotoRow]) -> None:
    for p in photos:
        await conn.execute(
            "INSERT INTO subject_photos (subject_id, n, sha256, accepted, verdict, object_key, media_type, width,"
            " height, fingerprint, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [p.subject_id, p.n, p.sha256, p.object_key is not None, json.dumps(p.verdict), p.object_key,
             p.media_type, p.width, p.height, p.fingerprint, p.embedding])


@dataclass(frozen=True, kw_only=True)
class SubjectUpdate:
    """A subject's state after a change: its state, count of changes, photo set, sealed
    centroid, reason and identity."""

    id: UUID
    state: str
    seq: int
    at: datetime
    photo_set_sha256: str | None = None
    centroid: dict[str, Any] | None = None
    reason: str = ""
    identity: dict[str, Any] | None = None


async def update_subject(conn: Conn, update: SubjectUpdate) -> None:
    await conn.execute(
        "UPDATE subjects SET state = %s, seq = %s, photo_set_sha256 = %s, centroid = %s, reason = %s, identity = %s,"
        " updated_at = %s WHERE id = %s",
        [update.state, update.seq, update.photo_set_sha256, json.dumps(update.centroid) if update.centroid else None,
         update.reason, json.dumps(update.identity) if update.identity else None, update.at, update.id])


async def ordered(conn: Conn, subject_id: UUID, *, at: datetime) -> None:
    """A job named the subject: its retention counts from now."""
    await conn.execute("UPDATE subjects SET last_ordered_at = greatest(coalesce(last_ordered_at, %s), %s)"
                       " WHERE id = %s", [at, at, subject_id])


async def erase_subject(conn: Conn, subject_id: UUID, *, at: datetime) -> list[str]:
    """Forget the subject's photos, embeddings, centroid, identity and name (its id answers
    410 from now on); the keys of its stored photos, to delete."""
    rows = await (await conn.execute("DELETE FROM subject_photos WHERE subject_id = %s RETURNING object_key",
                                     [subject_id])).fetchall()
    await conn.execute("UPDATE subjects SET state = 'erased', name = '', centroid = NULL, identity = NULL,"
                       " photo_set_sha256 = NULL, seq = seq + 1, updated_at = %s, erased_at = %s WHERE id = %s",
                       [at, at, subject_id])
    return sorted({row["object_key"] for row in rows if row["object_key"]})


@dataclass(frozen=True, kw_only=True)
class SubjectRows:
    tenant_id: str
    limit: int
    before: tuple[datetime, UUID] | None = None


async def list_subjects(conn: Conn, page: SubjectRows) -> list[dict[str, Any]]:
    """The tenant's subjects not erased, newest first, `limit` after the cursor `before`."""
    created, last_id = page.before or (None, None)
    return await (await conn.execute(
        f"{SUBJECT_ROW} WHERE s.tenant_id = %s AND s.state <> 'erased'"
        " AND (%s::timestamptz IS NULL OR (s.created_at, s.id) < (%s, %s))"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT %s",
        [page.tenant_id, created, created, last_id, page.limit])).fetchall()


async def subjects_past_retention(conn: Conn, default_days: int, *, limit: int) -> list[dict[str, Any]]:
    """Subjects not kept whose last order (or creation) is older than their tenant's retention,
    locked (skipping those another transaction holds)."""
    return await (await conn.execute(
        "SELECT s.id, s.tenant_id, s.kind FROM subjects s JOIN tenants t ON t.id = s.tenant_id"
        " WHERE s.state <> 'erased' AND NOT s.keep AND coalesce(s.last_ordered_at, s.created_at)"
        " < now() - make_interval(days => coalesce(t.subject_retention_days, %s))"
        " ORDER BY coalesce(s.last_ordered_at, s.created_at) LIMIT %s FOR UPDATE OF s SKIP LOCKED",
        [default_days, limit])).fetchall()


async def subject_retention_days(conn: Conn, tenant_id: str) -> int | None:
    row = await (await conn.execute("SELECT subject_retention_days FROM tenants WHERE id = %s",
                                    [tenant_id])).fetchone()
    return row["subject_retention_days"] if row else None


async def set_subject_retention(conn: Conn, tenant_id: str, *, days: int | None) -> None:
    await conn.execute("UPDATE tenants SET subject_retention_days = %s WHERE id = %s", [days, tenant_id])
