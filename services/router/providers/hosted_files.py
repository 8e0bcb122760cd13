"""Files a provider keeps for its models' inputs: a subject's photos reach a trainer or a
reference model as a URL of the provider's own storage, uploaded once, never inline. Inline,
the photos would travel again in every echo of the request (Replicate's webhooks carry the
training's whole input) and in every one of an order's calls.

Each adapter that hosts files (`AdapterTraits.hosts_files`) has a `FileHost`, as its official
client uploads (fal/queue.py `FalStorage`, replicate/predictions.py `ReplicateFiles`): `upload` gives the file's
URL, the id that deletes it where the provider can, and when the provider drops it.

`HostedPhotos` keeps the URLs of one provider's copies of subjects' photos, each uploaded once
and used again until shortly before it expires (an order's calls use them for minutes).
"""

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from services.router.providers.identity_inputs import IdentityInput, photo_type

# A copy used this close to its expiry is uploaded again: a call may run for minutes after.
SPARE_S = 15 * 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A file to upload, and how long the provider should keep it where it lets the uploader
    say (None: the provider's own default for the adapter's purpose)."""

    data: bytes
    name: str
    media_type: str
    keep_s: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostedFile:
    """A file the provider keeps: where its models read it, the id that deletes it (None where
    the API deletes nothing), and when the provider drops it (epoch seconds)."""

    url: str
    expires_at: float
    id: str | None = None


class FileHost(Protocol):
    async def upload(self, upload: Upload) -> HostedFile: ...

    async def delete(self, file_id: str) -> None: ...


def photo_upload(photo: bytes, *, keep_s: int | None = None) -> Upload:
    """A photo as it is uploaded: named by its hash, typed by its first bytes."""
    media_type = photo_type(photo)
    return Upload(data=photo, name=f"{hashlib.sha256(photo).hexdigest()[:16]}.{media_type.partition('/')[2]}",
                  media_type=media_type, keep_s=keep_s)


class HostedPhotos:
    """Subjects' photos at one provider: each uploaded once, its URL used until it nears expiry."""

    def __init__(self, host: FileHost, *, size: int = 512) -> None:
        self.host = host
        self.size = size
        self._kept: OrderedDict[tuple[str, str], HostedFile] = OrderedDict()
        self._uploading: dict[tuple[str, str], asyncio.Task[HostedFile]] = {}

    async def urls(self, identity: IdentityInput) -> tuple[str, ...]:
        """The URLs of the identity's photos, in their order."""
        hosted = await asyncio.gather(*(self._hosted(identity.subject_id, photo) for photo in identity.photos))
        return tuple(file.url for file in hosted)

    async def _hosted(self, subject_id: str, photo: bytes) -> HostedFile:
        key = (subject_id, hashlib.sha256(photo).hexdigest())
        kept = self._kept.get(key)
        if kept is not None and kept.expires_at - time.time() > SPARE_S:
            self._kept.move_to_end(key)
            return kept
        # Calls of one order ask at once: one upload serves them all.
        task = self._uploading.get(key)
        if task is None:
            task = self._uploading[key] = asyncio.create_task(self.host.upload(photo_upload(photo)))
            task.add_done_callback(lambda _: self._uploading.pop(key, None))
        hosted = await asyncio.shield(task)
        self._keep(key, hosted)
        return hosted

    def _keep(self, key: tuple[str, str], hosted: HostedFile) -> None:
        self._kept[key] = hosted
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
