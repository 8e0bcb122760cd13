"""Opening a job's subject: its sealed photos (objects in the internal bucket) and its sealed
centroid, with the subject's data key that ingest keeps (`DataKeys.subject_key`), decoded
once into what its candidates are compared with (`dimensions.likeness.Likeness`).

A job's chunks and attempts, and a subject's later orders, are judged against the same
likeness: it is kept in this process, by subject and photo set, no longer than the key is
(`data_key_cache_s`). The key is asked for (or found in the key cache) every time, so an
erased subject fails the job that names it (`SubjectUnavailable`) rather than pass on what
was kept.
"""

import asyncio
import base64
import time
from dataclasses import dataclass, field

from services.common.contracts import SubjectRef
from services.common.data_keys import DataKeys
from services.common.sealing import BrokenSeal, SubjectField, open_bytes, open_subject_text
from services.common.storage import ObjectStore, StorageError
from services.scorer.dimensions.likeness import centroid_from, likeness_of
from services.scorer.dimensions.subject import Likeness, OpenedSubject

ERASED = "subject_erased"
UNREADABLE = "subject_unreadable"
# Subjects kept at once: a likeness is a centroid, a skin colour, or a product's features.
SUBJECTS_KEPT = 16


class SubjectUnavailable(Exception):
    """The job's subject cannot be opened: erased (its key or photos are gone: `code`
    subject_erased), or its sealed content does not open with its key or does not decode
    (subject_unreadable). The job cannot be judged against it."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(kw_only=True)
class Likenesses:
    """Likenesses of the subjects jobs are of, opened with their keys and kept for `keep_s`."""

    objects: ObjectStore
    data_keys: DataKeys
    keep_s: float
    _kept: dict[tuple[str, str], tuple[Likeness, float]] = field(default_factory=dict, repr=False)

    async def likeness(self, subject: SubjectRef) -> Likeness:
        """The subject's likeness; SubjectUnavailable when it cannot be opened (any more)."""
        key = await self.data_keys.subject_key(subject.subject_id)
        held = (str(subject.subject_id), subject.photo_set_sha256)
        if key is None:
            self._kept.pop(held, None)
            raise SubjectUnavailable(ERASED, f"the subject {subject.name!r} ({subject.subject_id}) was erased: its photos"
                                             " and centroid can no longer be opened, so no candidate can be checked"
                                             " against it")
        self._forget_stale()
        kept = self._kept.get(held)
        if kept is not None:
            return kept[0]
        opened = await self._opened(subject, key)
        try:
            likeness = await asyncio.to_thread(likeness_of, opened)
        except ValueError as error:
            raise SubjectUnavailable(UNREADABLE, f"the subject {subject.name!r} ({subject.subject_id}): {error}") from error
        if len(self._kept) >= SUBJECTS_KEPT:
            self._kept.pop(min(self._kept, key=lambda k: self._kept[k][1]))
        self._kept[held] = (likeness, time.monotonic())
        return likeness

    async def _opened(self, subject: SubjectRef, key: bytes) -> OpenedSubject:
        bucket, subject_id = self.objects.internal_bucket, subject.subject_id
        try:
            sealed = await asyncio.gather(*(self.objects.get(bucket, photo.key) for photo in subject.photos))
            photos = [open_bytes(key, SubjectField(subject_id, f"photo/{photo.sha256}"), sealed=data)
                      for photo, data in zip(subject.photos, sealed, strict=True)]
            centroid = None
            if subject.centroid is not None:
                text = open_subject_text(key, SubjectField(subject_id, "centroid"), sealed=subject.centroid)
                centroid = centroid_from(base64.b64decode(text))
        except StorageError as error:
            if error.status != 404:
                raise
            raise SubjectUnavailable(ERASED, f"a photo of the subject {subject.name!r} ({subject_id}) is gone from the"
                                             " bucket (erased), so no candidate can be checked against it") from error
        except (BrokenSeal, ValueError) as error:
            raise SubjectUnavailable(UNREADABLE, f"the subject {subject.name!r} ({subject_id}) does not open with its"
                                                 f" key: {error}") from error
        return OpenedSubject(subject_id=str(subject_id), kind=subject.kind, photos=photos, centroid=centroid)

    def _forget_stale(self) -> None:
        now = time.monotonic()
        for held in [h for h, (_, at) in self._kept.items() if now - at >= self.keep_s]:
            del self._kept[held]
