"""A subject as clients see it, and how its state moves, without I/O.

`screening` (fewer than MIN_PHOTOS accepted photos) → `ready` (enough to order with) →
`training` (an order trains its identity: IdentityPlanned with `trains`) → `trained`
(IdentityTrained) or `failed` (IdentityTrainingFailed: the subject is still ordered by
reference, and a later order may train again); any state → `erased`. New photos accepted
into a trained or failed subject make a new photo set, so it is `ready` again: an identity
is trained from one photo set. Every change counts in `seq` and is announced
(SubjectChanged); the view it carries never holds a photo.
"""

import hashlib
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from services.common.contracts import (
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    SubjectChanged,
    SubjectKind,
    SubjectState,
)
from services.ingest.subjects.judging import MIN_PHOTOS

TRIGGER_LETTERS = 6
# What a subject may be told while it is being trained: no photos (they would change the set).
ORDERABLE: tuple[str, ...] = ("ready", "training", "trained", "failed")


class PhotoVerdict(BaseModel):
    """One photo offered to a subject, and its verdict; the photo itself is never shown."""

    n: int = Field(description="its place among the photos offered to the subject, from 1")
    sha256: str = Field(description="of the photo as screened (upright, without metadata)")
    accepted: bool
    reasons: list[str] = Field([], description="why it was refused, each a sentence to act on")
    checks: list[dict[str, Any]] = Field([], description="the template checks it failed: dimension, value, bounds")
    identity_distance: float | None = Field(None, description="a person's photo: its face's distance from the"
                                                              " centroid of the subject's other photos (one person:"
                                                              " under 0.6)")
    near_duplicate_of: int | None = Field(None, description="the photo it repeats, when it was refused for that")
    eyes: float | None = Field(None, description="a person's photo with one face: the open eyes the eye detector"
                                                 " found in it (2: both); null where not counted")
    source: str = Field(description="where the request held it: photos[i] or uploads[i] (an upload's id)")
    width: int | None = None
    height: int | None = None
    added_at: datetime


class WaivedCheck(BaseModel):
    """A check the subject's candidates are not held to, and why."""

    dimension: str
    reason: str


class SubjectIdentity(BaseModel):
    """The identity trained from the subject's photos, as the router reported it."""

    identity_id: UUID
    provider: str
    model: str
    weights_sha256: str
    photo_set_sha256: str
    trained_at: datetime


class Subject(BaseModel):
    """A person or a product, known by the photos the tenant gave of it."""

    id: UUID
    kind: SubjectKind
    name: str
    state: SubjectState
    keep: bool = Field(description="kept whatever the retention: true only when the tenant asked")
    trigger_word: str = Field(description="the token a LoRA trained from it is prompted with")
    photos_accepted: int
    photos_refused: int
    photo_set_sha256: str | None = Field(description="a digest of the accepted photos: an identity is trained"
                                                     " from one photo set")
    reason: str = Field("", description="why it is in its state (a training's failure, for one)")
    identity: SubjectIdentity | None = Field(None, description="the identity trained from it, once trained")
    created_at: datetime
    updated_at: datetime
    last_ordered_at: datetime | None = None
    erase_after: datetime | None = Field(None, description="when the retention erases it unless it is ordered"
                                                           " again; null when it is kept")
    photos: list[PhotoVerdict] = Field([], description="every photo offered, with its verdict")
    waived_checks: list[WaivedCheck] = Field([], description="checks its candidates will not be held to, each with"
                                                             " why: eyes_open for a person in whose own photos the eye"
                                                             " detector finds two open eyes in fewer than half")
    url: str


def trigger_word() -> str:
    """A rare token for a LoRA to learn the subject by: `gl` and six random letters."""
    return "gl" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(TRIGGER_LETTERS))


def photo_set_sha256(hashes: Sequence[str]) -> str | None:
    """The digest of a photo set: sha256 of its photos' sha256s, sorted, one a line."""
    if not hashes:
        return None
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def state_after_photos(state: str, accepted: int, *, photo_set_changed: bool) -> str:
    """A subject's state once photos were added: ready with enough accepted photos; a trained
    or failed subject whose photo set changed is ready again (its identity was trained from
    another set)."""
    if state == "screening":
        return "ready" if accepted >= MIN_PHOTOS else "screening"
    if state in ("trained", "failed") and photo_set_changed:
        return "ready"
    return state


@dataclass(frozen=True)
class SubjectMove:
    """Where an identity event takes a subject: its state, why, and the identity trained."""

    state: str
    reason: str = ""
    identity: SubjectIdentity | None = None


IdentityEvent = IdentityPlanned | IdentityTrained | IdentityTrainingFailed


def identity_move(state: str, photo_set: str | None, *, event: IdentityEvent) -> SubjectMove | None:
    """What an order's identity event does to its subject; None: nothing (an erased subject, a
    plan that trains nothing, a late report of a training of another photo set)."""
    if state == "erased":
        return None
    match event:
        case IdentityPlanned() if event.trains and state != "training":
            return SubjectMove("training", f"an identity is being trained by job {event.job_id}")
        case IdentityTrained():
            identity = SubjectIdentity(identity_id=event.identity_id, provider=event.provider, model=event.model,
                                       weights_sha256=event.weights_sha256, photo_set_sha256=event.photo_set_sha256,
                                       trained_at=event.trained_at)
            moved = "trained" if event.photo_set_sha256 == photo_set else "ready" if state == "training" else state
            return SubjectMove(moved, f"trained by {event.provider} ({event.model})", identity)
        case IdentityTrainingFailed() if state == "training":
            return SubjectMove("failed", f"training failed ({event.failure_code}): {event.reason}; orders go on by reference")
        case _:
            return None


def erase_after(row: dict[str, Any], retention: timedelta) -> datetime | None:
    """When the retention erases a subject: `retention` after its last order (or creation)."""
    if row["keep"] or row["state"] == "erased":
        return None
    last: datetime = row["last_ordered_at"] or row["created_at"]
    return last + retention


WEBHOOK_STATES = ("ready", "trained", "failed")


@dataclass(frozen=True)
class Changed:
    """A change of a subject as announced: the subject after it, and when."""

    subject: Subject
    at: datetime

    def event(self, tenant_id: str, seq: int) -> SubjectChanged:
        view = self.subject.model_dump(mode="json", exclude={"photos"})
        return SubjectChanged(tenant_id=tenant_id, subject_id=self.subject.id, kind=self.subject.kind,
                              state=self.subject.state, seq=seq, photo_set_sha256=self.subject.photo_set_sha256,
                              reason=self.subject.reason, view=view, changed_at=self.at)

