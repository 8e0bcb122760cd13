"""`client.subjects`: the people and products your jobs are of, made known by your photos.

    subject = client.subjects.create("person", "Ada", photos=["ada-1.jpg", "ada-2.jpg", …])
    for photo in subject.photos:            # each photo's verdict: accepted, or why not
        print(photo.n, photo.accepted, photo.reasons)
    job = client.jobs.create("professional headshot", template="subject-headshots", subject=subject,
                             images=60, candidates=240)
    subject = client.subjects.wait(subject, until="trained")   # its identity, once trained
    client.subjects.delete(subject)         # photos, embeddings and identities erased
"""

from __future__ import annotations  # `list[...]` below, inside a class with a `list` method

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

from genline_client._calls import AsyncClientCalls, Call, ClientCalls, deadline_in, job_id_of, past, without_none
from genline_client.errors import WaitTimeout
from genline_client.models import PhotosAdded, Subject, SubjectPage

# The API takes at most this many photos in one request's JSON; more go in further requests.
PHOTOS_PER_REQUEST = 10
Photo = str | PathLike | bytes


def encoded(photos: Iterable[Photo]) -> list[str]:
    """Each photo (a path or its bytes) as base64, as the API takes it."""
    return [base64.b64encode(p if isinstance(p, bytes) else Path(p).read_bytes()).decode() for p in photos]


def batches(photos: list[str], uploads: list[str]) -> list[dict[str, Any]]:
    """The photos in requests of at most PHOTOS_PER_REQUEST, the uploads with the first."""
    chunks = [photos[i:i + PHOTOS_PER_REQUEST] for i in range(0, len(photos), PHOTOS_PER_REQUEST)] or [[]]
    return [without_none({"photos": chunk or None, "uploads": (uploads or None) if i == 0 else None})
            for i, chunk in enumerate(chunks)]


def subject_id_of(subject: Any) -> str:
    return job_id_of(subject)


def create_call(kind: str, name: str, keep: bool, first: dict[str, Any]) -> Call:
    return Call(method="POST", path="/v1/subjects", json={"kind": kind, "name": name, "keep": keep} | first)


def photos_call(subject: Any, batch: dict[str, Any]) -> Call:
    return Call(method="POST", path=f"/v1/subjects/{subject_id_of(subject)}/photos", json=batch)


def list_call(limit: int | None, cursor: str | None) -> Call:
    return Call(method="GET", path="/v1/subjects", params=without_none({"limit": limit, "cursor": cursor}))


def wanted(until: str | Iterable[str]) -> frozenset[str]:
    return frozenset({until} if isinstance(until, str) else until)


class Subjects:
    """`client.subjects` of `Genline`."""

    def __init__(self, client: ClientCalls) -> None:
        self._client = client

    def create(self, kind: str, name: str, *, photos: Iterable[Photo] = (), uploads: Iterable[Any] = (),
               keep: bool = False) -> Subject:
        """Make a subject (`kind` "person" or "product") from photos (paths or bytes) and uploads
        (ids of `client.upload`); the answer lists each photo's verdict. It is `ready` with 4
        accepted photos. `keep` keeps it past the retention (30 days after its last order)."""
        first, *more = batches(encoded(photos), [subject_id_of(u) for u in uploads])
        subject = Subject.model_validate(self._client.call(create_call(kind, name, keep=keep, first=first)))
        for batch in more:
            subject = self._add(subject, batch).subject
        return subject

    def add_photos(self, subject: Any, *, photos: Iterable[Photo] = (), uploads: Iterable[Any] = ()) -> PhotosAdded:
        """Add photos to a subject; `PhotosAdded.added` are their verdicts, in order."""
        added: list[Any] = []
        result = None
        for batch in batches(encoded(photos), [subject_id_of(u) for u in uploads]):
            result = self._add(subject, batch)
            added += result.added
        assert result is not None
        return result.model_copy(update={"added": added})

    def _add(self, subject: Any, batch: dict[str, Any]) -> PhotosAdded:
        return PhotosAdded.model_validate(self._client.call(photos_call(subject, batch)))

    def get(self, subject: Any) -> Subject:
        return Subject.model_validate(self._client.call(Call(method="GET", path=f"/v1/subjects/{subject_id_of(subject)}")))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> SubjectPage:
        return SubjectPage.model_validate(self._client.call(list_call(limit, cursor)))

    def iterate(self) -> Iterator[Subject]:
        """Every subject, newest first, page after page (without its photos' verdicts)."""
        cursor = None
        while True:
            page = self.list(cursor=cursor)
            yield from page.data
            if not (cursor := page.next):
                return

    def delete(self, subject: Any) -> dict[str, Any]:
        """Erase a subject: its photos, embeddings and the identities trained from it."""
        return self._client.call(Call(method="DELETE", path=f"/v1/subjects/{subject_id_of(subject)}"))

    def wait(self, subject: Any, *, until: str | Iterable[str] = ("trained", "failed"), timeout: float | None = None,
             poll_interval: float = 2.0) -> Subject:
        """The subject once its state is one of `until` (`WaitTimeout` after `timeout` s); a
        subject whose training failed is returned too."""
        deadline, states = deadline_in(timeout), wanted(until) | {"failed"}
        while True:
            view = self.get(subject)
            if view.state in states:
                return view
            if past(deadline):
                raise WaitTimeout(f"subject {view.id} is still {view.state}")
            time.sleep(poll_interval)


class AsyncSubjects:
    """`client.subjects` of `AsyncGenline` (see `Subjects`)."""

    def __init__(self, client: AsyncClientCalls) -> None:
        self._client = client

    async def create(self, kind: str, name: str, *, photos: Iterable[Photo] = (), uploads: Iterable[Any] = (),
                     keep: bool = False) -> Subject:
        first, *more = batches(encoded(photos), [subject_id_of(u) for u in uploads])
        subject = Subject.model_validate(await self._client.call(create_call(kind, name, keep=keep, first=first)))
        for batch in more:
            subject = PhotosAdded.model_validate(await self._client.call(photos_call(subject, batch))).subject
        return subject

    async def add_photos(self, subject: Any, *, photos: Iterable[Photo] = (),
                         uploads: Iterable[Any] = ()) -> PhotosAdded:
        added: list[Any] = []
        result = None
        for batch in batches(encoded(photos), [subject_id_of(u) for u in uploads]):
            result = PhotosAdded.model_validate(await self._client.call(photos_call(subject, batch)))
            added += result.added
        assert result is not None
        return result.model_copy(update={"added": added})

    async def get(self, subject: Any) -> Subject:
        call = Call(method="GET", path=f"/v1/subjects/{subject_id_of(subject)}")
        return Subject.model_validate(await self._client.call(call))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> SubjectPage:
        return SubjectPage.model_validate(await self._client.call(list_call(limit, cursor)))

    async def iterate(self) -> AsyncIterator[Subject]:
        cursor = None
        while True:
            page = await self.list(cursor=cursor)
            for subject in page.data:
                yield subject
            if not (cursor := page.next):
                return

    async def delete(self, subject: Any) -> dict[str, Any]:
        return await self._client.call(Call(method="DELETE", path=f"/v1/subjects/{subject_id_of(subject)}"))

    async def wait(self, subject: Any, *, until: str | Iterable[str] = ("trained", "failed"),
                   timeout: float | None = None, poll_interval: float = 2.0) -> Subject:
        deadline, states = deadline_in(timeout), wanted(until) | {"failed"}
        while True:
            view = await self.get(subject)
            if view.state in states:
                return view
            if past(deadline):
                raise WaitTimeout(f"subject {view.id} is still {view.state}")
            await asyncio.sleep(poll_interval)
