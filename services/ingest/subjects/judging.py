"""Judging a subject's photos, without I/O: each photo offered gets a verdict, accepted or
refused with every reason a person can act on.

A photo is judged, in this order, by:

1. the catalogue's checks for its kind of subject (`templates.yaml` `subjects`: one face, its
   size, sharpness, exposure), with the sentences of `inputs/guidance.py`, and its size: at
   least MIN_SIDE pixels a side;
2. for a product, its foreground: found and separated from the background (a share of the
   frame between the bounds, a colour that stands apart from the background's);
3. repeats: the same bytes as a photo the subject has, or a near-duplicate of one (perceptual
   fingerprints at most NEAR_DUPLICATE_BITS apart);
4. for a person, one person in every photo: the face embeddings of the photos accepted so far
   and of the new ones are grouped around the subject's face, which is its accepted photos'
   (or, for a subject's first photos, the face most of them share); a photo whose embedding
   lies IDENTITY_THRESHOLD or more from the centroid of the subject's other photos is another
   person, refused with that distance, wherever it stands in the batch;
5. room: at most MAX_PHOTOS accepted photos.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.common.quality.fingerprints import NEAR_DUPLICATE_BITS, distance
from services.common.templates import InputCheck
from services.ingest.inputs import failed_checks

# dlib's threshold: two photos of one person lie under 0.6 apart (the scorer's identity).
IDENTITY_THRESHOLD = 0.6
MIN_PHOTOS, MAX_PHOTOS = 4, 30
MIN_SIDE = 256
# A product's foreground: its share of the frame, and how far its colour stands from the
# background's (CIELAB ΔE of their medians).
FOREGROUND_SHARE = (0.05, 0.9)
FOREGROUND_CONTRAST = 6.0


@dataclass(frozen=True, kw_only=True)
class PhotoMeasures:
    """What the scorer measured of a new photo (`inputs/scorer_calls.measure_subject_photo`)."""

    values: dict[str, float | None]
    width: int
    height: int
    fingerprint: str
    embedding: tuple[float, ...] | None = None
    foreground: dict[str, Any] | None = None
    # Open eyes found in a person's one face; None without one face, or where not counted.
    eyes: float | None = None


@dataclass(frozen=True, kw_only=True)
class Offered:
    """A photo offered to a subject: its hash, where in the request it came from, and what was
    measured of it; or, for a file screening refused (not an image, too large, a polyglot),
    why."""

    sha256: str
    source: str
    measured: PhotoMeasures | None = None
    refused: str | None = None


@dataclass(frozen=True, kw_only=True)
class Kept:
    """A photo the subject accepted before: its number, hash, fingerprint and embedding."""

    n: int
    sha256: str
    fingerprint: str
    embedding: tuple[float, ...] | None = None


@dataclass(kw_only=True)
class PhotoJudgement:
    """A new photo's verdict: accepted, or refused with its reasons (and the checks it failed,
    its distance from the subject's other photos, the photo it repeats)."""

    offered: Offered
    n: int
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, object]] = field(default_factory=list)
    identity_distance: float | None = None
    repeats: int | None = None

    @property
    def accepted(self) -> bool:
        return not self.reasons

    def as_json(self) -> dict[str, Any]:
        measured = self.offered.measured
        return {"source": self.offered.source, "reasons": self.reasons, "checks": self.checks,
                "identity_distance": self.identity_distance, "near_duplicate_of": self.repeats,
                "eyes": measured.eyes if measured is not None else None}


@dataclass(frozen=True, kw_only=True)
class JudgedAgainst:
    """What a batch is judged against: the subject's kind, the checks its photos pass, the
    photos it has accepted, and the number of the last photo it was offered (accepted or not)."""

    kind: str
    checks: dict[str, InputCheck]
    kept: Sequence[Kept] = ()
    last_n: int = 0


def judged(batch: JudgedAgainst, offered: Sequence[Offered]) -> list[PhotoJudgement]:
    """The verdict of each offered photo, in order, numbered after every photo the subject was
    offered: a refused photo keeps its number, so one refused last is not numbered again."""
    first_n = max([batch.last_n, *(k.n for k in batch.kept)]) + 1
    verdicts = [PhotoJudgement(offered=photo, n=first_n + i) for i, photo in enumerate(offered)]
    for verdict in verdicts:
        own_checks(batch, verdict)
    repeats(batch, verdicts)
    if batch.kind == "person":
        one_person(batch, verdicts)
    room(batch, verdicts)
    return verdicts


def own_checks(batch: JudgedAgainst, verdict: PhotoJudgement) -> None:
    measured = verdict.offered.measured
    if measured is None:
        verdict.reasons.append(verdict.offered.refused or "the file could not be read as a photo")
        return
    failed = failed_checks(batch.checks, measured.values)
    verdict.reasons += [f.message for f in failed]
    verdict.checks += [f.as_json() for f in failed]
    if min(measured.width, measured.height) < MIN_SIDE:
        verdict.reasons.append(f"the photo is {measured.width}×{measured.height} pixels; give one at least {MIN_SIDE}"
                               " pixels a side")
    if batch.kind == "product" and not separated(measured.foreground):
        verdict.reasons.append("the product could not be told from its background; photograph it whole and centred,"
                               " against a plain background that differs from it")
    if batch.kind == "person" and measured.embedding is None and not failed:
        verdict.reasons.append("the face could not be compared with the subject's other photos (no face model on this"
                               " platform)")


def separated(foreground: dict[str, Any] | None) -> bool:
    if not foreground:
        return False
    low, high = FOREGROUND_SHARE
    return low <= float(foreground.get("share", 0.0)) <= high and float(foreground.get("contrast", 0.0)) >= FOREGROUND_CONTRAST


def repeats(batch: JudgedAgainst, verdicts: list[PhotoJudgement]) -> None:
    """Refuse a photo that repeats one the subject has, or an earlier one of the batch that
    passed its checks (a photo refused for something else is told this too)."""
    seen: list[tuple[int, str, str]] = [(k.n, k.sha256, k.fingerprint) for k in batch.kept]
    for verdict in verdicts:
        photo = verdict.offered
        if photo.measured is None:
            continue
        passed = verdict.accepted
        for n, sha256, fingerprint in seen:
            if sha256 == photo.sha256:
                verdict.reasons.append(f"the same photo as photo {n}")
            elif (bits := distance(fingerprint, photo.measured.fingerprint)) <= NEAR_DUPLICATE_BITS:
                verdict.reasons.append(f"nearly the same picture as photo {n} ({bits} of 64 fingerprint bits differ;"
                                       f" {NEAR_DUPLICATE_BITS} or fewer is a repeat): give another pose, framing or"
                                       " setting")
            else:
                continue
            verdict.repeats = n
            break
        else:
            if passed:
                seen.append((verdict.n, photo.sha256, photo.measured.fingerprint))


def one_person(batch: JudgedAgainst, verdicts: list[PhotoJudgement]) -> None:
    """Accept the new photos of the subject's person; refuse the others with their distance."""
    kept = [np.asarray(k.embedding) for k in batch.kept if k.embedding is not None]
    embeddings = {v.n: np.asarray(v.offered.measured.embedding) for v in verdicts
                  if v.accepted and v.offered.measured is not None and v.offered.measured.embedding is not None}
    new = [v for v in verdicts if v.n in embeddings]
    core = kept or largest_group(list(embeddings.values()))
    if not core:
        return
    centroid = np.mean(core, axis=0)
    members = [n for n, e in embeddings.items() if _distance(e, centroid) < IDENTITY_THRESHOLD]
    for verdict in new:
        others = kept + [embeddings[n] for n in members if n != verdict.n]
        own = embeddings[verdict.n]
        verdict.identity_distance = round(_distance(own, np.mean(others, axis=0)), 3) if others else 0.0
        if verdict.identity_distance >= IDENTITY_THRESHOLD:
            verdict.reasons.append(f"another person: identity {verdict.identity_distance:.2f} from the subject's other"
                                   f" photos; at most {IDENTITY_THRESHOLD}")


def largest_group(embeddings: list[np.ndarray]) -> list[np.ndarray]:
    """The photos around the face most of them share: the embedding with the most others
    within the threshold (the first of equals), and those others."""
    if not embeddings:
        return []
    neighbours = [[e for e in embeddings if _distance(e, pick) < IDENTITY_THRESHOLD] for pick in embeddings]
    return max(neighbours, key=len)


def room(batch: JudgedAgainst, verdicts: list[PhotoJudgement]) -> None:
    accepted = len(batch.kept)
    for verdict in verdicts:
        if verdict.accepted:
            if accepted >= MAX_PHOTOS:
                verdict.reasons.append(f"the subject has {MAX_PHOTOS} photos, the most it takes")
            else:
                accepted += 1


def centroid_of(embeddings: Sequence[Sequence[float]]) -> np.ndarray | None:
    """The mean face embedding of a person's accepted photos, as float32."""
    if not embeddings:
        return None
    mean: np.ndarray = np.mean(np.asarray(embeddings, dtype=np.float64), axis=0).astype("<f4")
    return mean


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))
