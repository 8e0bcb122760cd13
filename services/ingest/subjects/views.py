"""A subject as the API shows it, built from its rows, and what is kept sealed of it: its
photos' embeddings and its centroid, under the subject's own data key."""

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np

from services.common.contracts import SealedText, SubjectPhoto, SubjectRef
from services.common.problems import Problem
from services.common.quality.profiles import eyes_waiver
from services.common.sealing import SubjectField, open_bytes, seal_bytes, seal_subject_text
from services.ingest.subjects.domain import PhotoVerdict, Subject, SubjectIdentity, WaivedCheck, erase_after
from services.ingest.subjects.judging import Kept


def photo_verdict(row: dict[str, Any]) -> PhotoVerdict:
    verdict = row["verdict"]
    return PhotoVerdict(n=row["n"], sha256=row["sha256"], accepted=row["accepted"], reasons=verdict.get("reasons", []),
                        checks=verdict.get("checks", []), identity_distance=verdict.get("identity_distance"),
                        near_duplicate_of=verdict.get("near_duplicate_of"), eyes=verdict.get("eyes"),
                        source=verdict.get("source", ""), width=row["width"], height=row["height"],
                        added_at=row["added_at"])


def waived_checks(kind: str, photos: Sequence[dict[str, Any]]) -> list[WaivedCheck]:
    """The checks a subject's candidates will not be held to, told when its photos are: a
    person's open eyes, by the rule the scorer judges them with (`profiles.eyes_waiver`), from
    the eyes counted in each accepted photo (one face each). Photos kept before their eyes were
    counted leave it unsaid; the scorer still applies the rule to them."""
    accepted = [p["verdict"] for p in photos if p["accepted"]]
    if kind != "person" or not accepted or any("eyes" not in verdict for verdict in accepted):
        return []
    counted = [verdict["eyes"] for verdict in accepted]
    eyes_seen = None if any(eyes is None for eyes in counted) else sum(eyes >= 2 for eyes in counted)
    waiver = eyes_waiver(faced=len(accepted), eyes_seen=eyes_seen)
    return [WaivedCheck(dimension="eyes_open", reason=waiver)] if waiver else []


def subject_view(row: dict[str, Any], photos: Sequence[dict[str, Any]], *, retention: timedelta,
                 judged: Sequence[dict[str, Any]] | None = None) -> Subject:
    """The subject as GET /v1/subjects/{id} shows it (its photos' verdicts, never their bytes);
    a page of subjects shows none of its photos, but what their verdicts waive (`judged`)."""
    identity = SubjectIdentity.model_validate(row["identity"]) if row["identity"] else None
    return Subject(id=row["id"], kind=row["kind"], name=row["name"], state=row["state"], keep=row["keep"],
                   trigger_word=row["trigger_word"], photos_accepted=row["photos_accepted"],
                   photos_refused=row["photos_refused"], photo_set_sha256=row["photo_set_sha256"],
                   reason=row["reason"], identity=identity, created_at=row["created_at"],
                   updated_at=row["updated_at"], last_ordered_at=row["last_ordered_at"],
                   erase_after=erase_after(row, retention), photos=[photo_verdict(p) for p in photos],
                   waived_checks=waived_checks(row["kind"], photos if judged is None else judged),
                   url=f"/v1/subjects/{row['id']}")


def encode_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{row['created_at'].isoformat()}|{row['id']}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        created, subject_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), UUID(subject_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(status=422, slug="invalid-cursor", detail="the cursor is not one this API gave") from None


# ---- sealed: embeddings and the centroid -----------------------------------------------------


def embedding_field(subject_id: UUID, sha256: str) -> SubjectField:
    return SubjectField(subject_id, f"embedding/{sha256}")


def sealed_embedding(key: bytes, field: SubjectField, *, embedding: Sequence[float]) -> bytes:
    return seal_bytes(key, field, data=np.asarray(embedding, dtype="<f4").tobytes())


def kept_photo(key: bytes, row: dict[str, Any]) -> Kept:
    """An accepted photo as a new batch is judged against it, its embedding opened."""
    embedding = None
    if row["embedding"] is not None:
        clear = open_bytes(key, embedding_field(row["subject_id"], row["sha256"]), sealed=bytes(row["embedding"]))
        embedding = tuple(float(v) for v in np.frombuffer(clear, dtype="<f4"))
    return Kept(n=row["n"], sha256=row["sha256"], fingerprint=row["fingerprint"], embedding=embedding)


def sealed_centroid(key: bytes, subject_id: UUID, *, centroid: np.ndarray | None) -> dict[str, Any] | None:
    """The centroid (float32 little-endian, base64) sealed as events carry it, as JSON."""
    if centroid is None:
        return None
    text = base64.b64encode(np.asarray(centroid, dtype="<f4").tobytes()).decode()
    return seal_subject_text(key, SubjectField(subject_id, "centroid"), text=text).model_dump()


def subject_ref(row: dict[str, Any], photos: Sequence[dict[str, Any]]) -> SubjectRef:
    """The subject as a job carries it (JobSpec.subject): its accepted photos' keys and hashes,
    its photo set, its sealed centroid and its trigger word."""
    kept = [SubjectPhoto(key=p["object_key"], sha256=p["sha256"], media_type=p["media_type"], width=p["width"],
                         height=p["height"]) for p in photos if p["accepted"]]
    centroid = SealedText.model_validate(row["centroid"]) if row["centroid"] else None
    return SubjectRef(subject_id=row["id"], kind=row["kind"], name=row["name"], photos=kept,
                      photo_set_sha256=row["photo_set_sha256"], centroid=centroid, trigger_word=row["trigger_word"])


def photo_key(tenant_id: str, subject_id: UUID, *, sha256: str) -> str:
    """Where a subject's accepted photo is stored, sealed, in the internal bucket."""
    return f"subjects/{tenant_id}/{subject_id}/{sha256}"
